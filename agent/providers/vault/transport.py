"""HTTP to Vault: one lazily created aiohttp session per (TLS settings, socket), shared by all
mounts, and transport failures turned into ProviderUnavailable so kubelet retries."""

from __future__ import annotations

import json
import os
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog

from agent.errors import ProviderError, ProviderUnavailable
from agent.providers.vault.config import TLSConfig, socket_path

log = structlog.get_logger(__name__)

RequestHook = Callable[[str, str], None]
"""Called with (method, path) before every request; tests count requests with it."""

_MAX_ERROR_TEXT = 300
_MULTIERROR = re.compile(r"^\d+ errors? occurred:")


@dataclass(frozen=True, slots=True)
class Target:
    """Where requests go: the Vault address, its namespace and how to reach it."""

    address: str
    namespace: str
    tls: TLSConfig


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: dict[str, Any] | None
    errors: tuple[str, ...]  # Vault's "errors" list: messages, never secret values

    def describe(self) -> str:
        return "; ".join(self.errors) or f"HTTP {self.status}"


class Transport:
    def __init__(self, *, timeout: float, on_request: RequestHook | None = None) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._on_request = on_request
        self._sessions: dict[tuple[TLSConfig, str], aiohttp.ClientSession] = {}

    async def call(
        self,
        target: Target,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: str | None = None,
        query: tuple[tuple[str, str], ...] = (),
    ) -> Reply:
        socket = socket_path(target.address)
        # The Vault Agent sidecar listens on a socket; the URL's host is then a placeholder.
        base = "http://localhost" if socket else target.address
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if token:
            headers["X-Vault-Token"] = token
        if target.namespace:
            headers["X-Vault-Namespace"] = target.namespace
        session = self._session(target.tls, socket)
        if self._on_request is not None:
            self._on_request(method, path)
        try:
            async with session.request(
                method,
                base + path,
                params=list(query),
                data=body,
                headers=headers,
                server_hostname=target.tls.server_name or None,
            ) as response:
                raw = await response.read()
                return _reply(response.status, raw)
        except aiohttp.ClientSSLError as err:
            # A certificate problem will not heal by retrying: report it as configuration.
            raise ProviderError(f"TLS error talking to Vault at {target.address}: {err}") from None
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            reason = str(err) or f"timed out after {self._timeout.total:g}s"
            raise ProviderUnavailable(
                f"cannot reach Vault at {target.address}: {type(err).__name__}: {reason}"
            ) from None

    def _session(self, tls: TLSConfig, socket: str) -> aiohttp.ClientSession:
        session = self._sessions.get((tls, socket))
        if session is None or session.closed:
            connector: aiohttp.BaseConnector
            if socket:
                connector = aiohttp.UnixConnector(path=socket)
            else:
                connector = aiohttp.TCPConnector(ssl=_ssl_context(tls))
            session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
            self._sessions[(tls, socket)] = session
        return session

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()


def _reply(status: int, raw: bytes) -> Reply:
    try:
        parsed = json.loads(raw) if raw.strip() else None
    except ValueError:
        parsed = None
    body = parsed if isinstance(parsed, dict) else None
    errors = body.get("errors") if body else None
    messages = [_tidy(str(e)) for e in (errors if isinstance(errors, list) else [])]
    return Reply(status, body, tuple(m for m in messages if m))


def _tidy(error: str) -> str:
    """One line per message: unwrap go-multierror's "1 error occurred:\n\t* x" layout."""
    items = [line.strip()[2:] for line in error.splitlines() if line.strip().startswith("* ")]
    text = "; ".join(items) if _MULTIERROR.match(error) and items else error
    return " ".join(text.split())[:_MAX_ERROR_TEXT]


def _ssl_context(tls: TLSConfig) -> ssl.SSLContext | bool:
    if not (tls.skip_verify or tls.ca_cert_path or tls.ca_directory or tls.client_cert_path):
        return True  # aiohttp's default: verify against the system trust store
    try:
        cadata = _ca_directory(tls.ca_directory) if tls.ca_directory else None
        if tls.ca_cert_path or cadata:
            # Like Go's Vault client, a configured CA replaces the system roots.
            context = ssl.create_default_context(cafile=tls.ca_cert_path or None, cadata=cadata)
        else:
            context = ssl.create_default_context()
        if tls.client_cert_path:
            context.load_cert_chain(tls.client_cert_path, tls.client_key_path)
    except (OSError, ssl.SSLError, ValueError) as err:
        raise ProviderError(
            f"cannot load the TLS files configured for Vault: {type(err).__name__}: {err}"
        ) from None
    if tls.skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _ca_directory(directory: str) -> str:
    """Concatenate the PEM files of a directory (Go reads them all; OpenSSL's capath would
    need c_rehash'd names)."""
    pems = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            with open(path, encoding="ascii", errors="ignore") as handle:
                text = handle.read()
            if "-----BEGIN CERTIFICATE-----" in text:
                pems.append(text)
    if not pems:
        raise ValueError(f"no PEM certificates in {directory}")
    return "\n".join(pems)
