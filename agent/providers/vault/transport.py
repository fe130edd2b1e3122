"""HTTP to Vault: one lazily created aiohttp session per (TLS parameters, socket) as written,
shared by all mounts, and transport failures turned into ProviderUnavailable so kubelet retries.

The session is keyed by the parameters, not by the files behind them: a ConfigMap update puts
a new CA behind the same path, and the session is then replaced (and the old one closed once
its requests finish) rather than one more kept open per update.

An answer is read whole but never beyond :func:`response_limit` of the payload limit
(``--max-payload-size``): a misdirected address or a hostile endpoint cannot make the agent
buffer more than that."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import structlog

from agent.aio.threads import run_blocking
from agent.config import DEFAULT_MAX_PAYLOAD_BYTES
from agent.errors import ProviderError, ProviderUnavailable
from agent.providers.common import gojson
from agent.providers.common.bodies import BodyTooLarge, read_capped
from agent.providers.common.http import parse_retry_after
from agent.providers.vault.config import TLSConfig
from agent.providers.vault.nodefiles import NodeFiles, ssl_context

log = structlog.get_logger(__name__)

RequestHook = Callable[[str, str], None]
"""Called with (method, path) before every request; tests count requests with it."""

_MAX_ERROR_TEXT = 300
_PARSE_OFF_LOOP_BYTES = 64 * 1024
_MULTIERROR = re.compile(r"^\d+ errors? occurred:")


def response_limit(max_payload_bytes: int) -> int:
    """Largest Vault answer read, in bytes: twice the volume's payload limit.

    Every file of a volume comes out of these answers, and the volume's files may total at
    most ``max_payload_bytes``, so a larger answer can only be written when much of it is
    JSON escaping or keys the volume does not write. Twice the limit leaves room for both
    (escaping adds about 2% to PEM or text; a secret read for one ``secretKey`` carries its
    other keys too), and at the default 16 MiB it is Vault's own default ``max_request_size``
    (32 MiB): every secret a default Vault accepts can be read back.
    """
    return 2 * max_payload_bytes


@dataclass(frozen=True, slots=True)
class Target:
    """Where requests go: the Vault address, its namespace and how to reach it."""

    address: str  # as configured, for messages
    namespace: str
    tls: TLSConfig = field(default_factory=TLSConfig)
    socket: str = ""  # of a unix:// address, as written: with ``tls``, the session's key
    files: NodeFiles = field(
        default_factory=NodeFiles
    )  # what the trust check read and resolved for this mount


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: dict[str, Any] | None = field(repr=False)  # secret data, a client token
    errors: tuple[str, ...]  # Vault's "errors" list: messages, never secret values
    retry_after: float | None = None  # a 429's Retry-After (rate limit quotas), in seconds

    def describe(self) -> str:
        return "; ".join(self.errors) or f"HTTP {self.status}"


@dataclass(eq=False, slots=True)
class _Session:
    files: NodeFiles  # what it was built from
    session: aiohttp.ClientSession
    users: int = 0  # requests in flight
    retired: bool = False  # replaced: closed when its last request ends


class Transport:
    def __init__(
        self,
        *,
        timeout: float,
        on_request: RequestHook | None = None,
        max_response_bytes: int = response_limit(DEFAULT_MAX_PAYLOAD_BYTES),
    ) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_response_bytes = max_response_bytes
        self._on_request = on_request
        self._sessions: dict[tuple[TLSConfig, str], _Session] = {}
        self._draining: set[_Session] = set()  # retired, with requests still in flight
        # One session built per change of files, however many mounts notice it at once.
        self._building = asyncio.Lock()

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
        headers = _headers(target, token, body)
        entry = await self._acquire(target)
        try:
            return await self._send(
                entry.session, target, method, path, headers=headers, body=body, query=query
            )
        except BodyTooLarge:
            raise ProviderError(
                f"Vault at {target.address} answered {method} {path} with more than "
                f"{self._max_response_bytes} bytes (twice --max-payload-size): more than a "
                "volume can hold"
            ) from None
        except aiohttp.ClientSSLError as err:
            # A certificate problem will not heal by retrying: report it as configuration.
            raise ProviderError(f"TLS error talking to Vault at {target.address}: {err}") from None
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            reason = str(err) or f"timed out after {self._timeout.total:g}s"
            raise ProviderUnavailable(
                f"cannot reach Vault at {target.address}: {type(err).__name__}: {reason}"
            ) from None
        finally:
            await self._release(entry)

    async def _send(
        self,
        session: aiohttp.ClientSession,
        target: Target,
        method: str,
        path: str,
        *,
        headers: dict[str, str],
        body: str | None,
        query: tuple[tuple[str, str], ...],
    ) -> Reply:
        """One request on ``session``, its answer read (capped) and decoded."""
        # The Vault Agent sidecar listens on a socket; the URL's host is then a placeholder.
        base = "http://localhost" if target.socket else target.address
        if self._on_request is not None:
            self._on_request(method, path)
        async with session.request(
            method,
            base + path,
            params=list(query),
            data=body,
            headers=headers,
            server_hostname=target.tls.server_name or None,
        ) as response:
            raw = await read_capped(response.content, self._max_response_bytes)
        hint = (
            parse_retry_after(response.headers.get("retry-after", ""), time.time())
            if response.status == 429
            else None
        )
        if len(raw) > _PARSE_OFF_LOOP_BYTES:
            # ~2.5 ms per MiB to decode as Go does: large secrets decode in a worker.
            return await run_blocking(_reply, response.status, raw, hint)
        return _reply(response.status, raw, hint)

    async def _acquire(self, target: Target) -> _Session:
        """The session for ``target``, counted as in use; rebuilt if its files changed."""
        key = (target.tls, target.socket)
        entry = self._sessions.get(key)
        if entry is None or entry.files != target.files:
            async with self._building:
                entry = self._sessions.get(key)
                if entry is None or entry.files != target.files:
                    entry = await self._replace(key, target.files, entry)
        entry.users += 1
        return entry

    async def _release(self, entry: _Session) -> None:
        entry.users -= 1
        if entry.retired and not entry.users:
            self._draining.discard(entry)
            await entry.session.close()

    async def _replace(
        self, key: tuple[TLSConfig, str], files: NodeFiles, old: _Session | None
    ) -> _Session:
        connector: aiohttp.BaseConnector
        if files.socket:
            connector = aiohttp.UnixConnector(path=files.socket)
        else:
            # Building a context can read the system trust store: not on the event loop.
            connector = aiohttp.TCPConnector(ssl=await run_blocking(ssl_context, files.tls))
        entry = _Session(files, aiohttp.ClientSession(connector=connector, timeout=self._timeout))
        self._sessions[key] = entry
        if old is not None:
            # Requests already sent on the old session finish there; it closes after them.
            old.retired = True
            if old.users:
                self._draining.add(old)
            else:
                await old.session.close()
        return entry

    def open_sessions(self) -> int:
        """How many aiohttp sessions are open, including replaced ones still draining."""
        entries = [*self._sessions.values(), *self._draining]
        return sum(not entry.session.closed for entry in entries)

    async def close(self) -> None:
        entries = [*self._sessions.values(), *self._draining]
        self._sessions, self._draining = {}, set()
        for entry in entries:
            await entry.session.close()


def _headers(target: Target, token: str | None, body: str | None) -> dict[str, str]:
    """The request's headers: JSON with a body, the token and the Vault namespace when set."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["X-Vault-Token"] = token
    if target.namespace:
        headers["X-Vault-Namespace"] = target.namespace
    return headers


def _reply(status: int, raw: bytes, hint: float | None = None) -> Reply:
    try:
        # As Vault's Go client decodes: numbers keep their text (UseNumber), so a value
        # written back as JSON is the bytes hashicorp's provider writes.
        parsed = gojson.loads(raw) if raw.strip() else None
    except ValueError:
        parsed = None
    body = parsed if isinstance(parsed, dict) else None
    errors = body.get("errors") if body else None
    messages = [_tidy(str(e)) for e in (errors if isinstance(errors, list) else [])]
    return Reply(status, body, tuple(m for m in messages if m), hint)


def _tidy(error: str) -> str:
    """One line per message: unwrap go-multierror's "1 error occurred:\n\t* x" layout."""
    items = [line.strip()[2:] for line in error.splitlines() if line.strip().startswith("* ")]
    text = "; ".join(items) if _MULTIERROR.match(error) and items else error
    return " ".join(text.split())[:_MAX_ERROR_TEXT]
