"""HTTP for the Azure provider: one aiohttp session for Key Vault, Entra and IMDS, with retries.

- Trust: the system store, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` from the agent's environment
  (as OpenSSL and Go read them); the context is built once, in a worker thread.
- Names: ``localhost`` and ``*.localhost`` resolve to the loopback addresses without asking DNS
  (RFC 6761 §6.3, as curl and browsers do); every other name goes to the usual resolver.
- Retries, as the Azure SDKs do: 408, 429, 500, 502, 503, 504 and connection failures are tried
  again up to ``max_attempts`` times, after ``Retry-After`` (seconds or an HTTP date) when the
  server sends one, else after a jittered exponential delay. A server asking for a longer wait
  than ``max_retry_delay`` is not waited for: the mount fails as unavailable and kubelet retries.
- Deadline: a mount's requests share one (``common.deadline``); no attempt or pause runs
  past it.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from agent.aio.threads import run_blocking
from agent.errors import ProviderError, ProviderUnavailable
from agent.providers.common.bodies import BodyTooLarge, read_capped
from agent.providers.common.deadline import attempt_timeout, budget
from agent.providers.common.http import parse_retry_after

Sleep = Callable[[float], Awaitable[None]]
RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_BODY_BYTES = 4 * 1024 * 1024
_BASE_DELAY_S = 0.8


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer: status, the headers the provider reads (lower-case names), JSON body."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = field(default=None, repr=False)  # secrets, tokens


class LocalhostResolver(AbstractResolver):
    """RFC 6761: ``*.localhost`` is loopback; other names use aiohttp's default resolver."""

    def __init__(self) -> None:
        self._default = aiohttp.DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        name = host.rstrip(".").lower()
        if name != "localhost" and not name.endswith(".localhost"):
            return await self._default.resolve(host, port, family)
        addresses = [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=kind,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for kind, address in addresses
            if family in (socket.AF_UNSPEC, kind)
        ]

    async def close(self) -> None:
        await self._default.close()


def trust_context(env: Mapping[str, str]) -> ssl.SSLContext:
    """The TLS context for every Azure endpoint. Blocking (reads the trust store)."""
    cafile, capath = env.get("SSL_CERT_FILE") or None, env.get("SSL_CERT_DIR") or None
    if cafile or capath:
        return ssl.create_default_context(cafile=cafile, capath=capath)
    return ssl.create_default_context()


def retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds the server asked to wait (``retry-after-ms``, ``x-ms-retry-after-ms``,
    ``Retry-After`` in seconds or as an HTTP date), or None."""
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        milliseconds = headers.get(name, "").strip()
        if milliseconds.isascii() and milliseconds.isdigit():
            return int(milliseconds) / 1000.0
    return parse_retry_after(headers.get("retry-after", ""), now)


class Transport:
    def __init__(
        self,
        *,
        timeout: float,
        env: Mapping[str, str],
        sleep: Sleep = asyncio.sleep,
        max_attempts: int = 4,
        max_retry_delay: float = 10.0,
    ) -> None:
        self._timeout = timeout  # per attempt, when no deadline is set
        self._env = dict(env)
        self._sleep = sleep
        self._max_attempts = max_attempts
        self._max_retry_delay = max_retry_delay
        self._session: aiohttp.ClientSession | None = None
        self._building = asyncio.Lock()
        self.requests = 0  # sent, retries included (benchmarks and tests read it)

    async def _open(self) -> aiohttp.ClientSession:
        if self._session is not None:
            return self._session
        async with self._building:
            if self._session is None:
                context = await run_blocking(trust_context, self._env)
                connector = aiohttp.TCPConnector(ssl=context, resolver=LocalhostResolver())
                self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def request(
        self,
        method: str,
        url: str,
        *,
        service: str,
        headers: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
    ) -> Reply:
        """Send with retries; the final answer whatever its status. ``service`` names the
        endpoint in messages ("Key Vault 'kv1'", "Entra ID"). Raises ProviderUnavailable when
        the endpoint cannot be reached, stays busy or the deadline passes; ProviderError for a
        TLS failure."""
        session = await self._open()
        attempt = 0
        while True:
            attempt += 1
            timeout = self._time_left(service)
            try:
                reply = await self._send(
                    session, method, url, headers=headers, data=data, timeout=timeout
                )
            except aiohttp.ClientSSLError as err:
                raise ProviderError(f"TLS error talking to {service}: {err}") from None
            except (aiohttp.ClientError, TimeoutError, OSError) as err:
                self._time_left(service)  # a timeout at the deadline is reported as such
                if attempt >= self._max_attempts:
                    reason = str(err) or "timed out"
                    raise ProviderUnavailable(
                        f"cannot reach {service}: {type(err).__name__}: {reason}"
                    ) from None
                await self._pause(self._backoff(attempt), service)
                continue
            if reply.status not in RETRIED_STATUSES or attempt >= self._max_attempts:
                return reply
            delay = retry_after(reply.headers, time.time())
            if delay is not None and delay > self._max_retry_delay:
                return reply  # the caller reports it; waiting that long is kubelet's job
            await self._pause(self._backoff(attempt) if delay is None else delay, service)

    def _time_left(self, service: str) -> float:
        """Seconds the next attempt may take; ProviderUnavailable once the deadline passed."""
        return attempt_timeout(self._timeout, service)

    async def _pause(self, delay: float, service: str) -> None:
        if delay >= self._time_left(service):
            # Sleeping past the deadline only to fail: report it now.
            seconds = budget() or self._timeout
            raise ProviderUnavailable(f"{service} did not answer within {seconds:g}s")
        await self._sleep(delay)

    async def _send(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None,
        data: Mapping[str, str] | None,
        timeout: float,
    ) -> Reply:
        self.requests += 1
        async with session.request(
            method, url, headers=headers, data=data, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as response:
            try:
                raw = await read_capped(response.content, MAX_BODY_BYTES)
            except BodyTooLarge:
                where = url.split("?", maxsplit=1)[0]
                raise ProviderError(
                    f"response from {where} is larger than {MAX_BODY_BYTES} bytes"
                ) from None
            kept = ("www-authenticate", "retry-after", "retry-after-ms", "x-ms-retry-after-ms")
            found = {name: response.headers[name] for name in kept if name in response.headers}
            return Reply(response.status, found, _json(raw))

    def _backoff(self, attempt: int) -> float:
        delay: float = _BASE_DELAY_S * 2.0 ** (attempt - 1)
        return min(self._max_retry_delay, delay * random.uniform(0.8, 1.2))  # noqa: S311


def _json(raw: bytes) -> dict[str, Any] | None:
    try:
        parsed = json.loads(raw) if raw.strip() else None
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None
