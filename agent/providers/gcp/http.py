"""HTTP to Google's REST APIs: one aiohttp session, JSON in and out, Google's error shapes, and
bounded retries with jittered backoff on throttling and transient failures.

Google's Go and Python clients do not retry ``RESOURCE_EXHAUSTED`` (429) by default, so a burst
of pods starting on a node fails mounts that a short wait would have served. Here 429, 500,
502, 503, 504 and connection failures are retried (``Retry-After`` honoured, capped), within the
mount's deadline (common.deadline: no attempt runs past it, and a wait that would is not
begun: the last answer is reported instead); everything else is reported at once.
"""

from __future__ import annotations

import asyncio
import json
import random
import ssl
import time
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from agent.aio.threads import run_blocking
from agent.errors import ProviderError, ProviderThrottled, ProviderUnavailable
from agent.providers.common.bodies import BodyTooLarge, read_capped
from agent.providers.common.deadline import attempt_timeout, fits
from agent.providers.common.http import parse_retry_after

RETRIABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
UNAUTHENTICATED = 401  # the access token was refused: a cached copy must be dropped
MAX_RESPONSE_BYTES = 8 * 1024 * 1024  # Parameter Manager allows 1 MiB, Secret Manager 64 KiB
_MAX_MESSAGE = 300

Sleep = Callable[[float], Awaitable[None]]
RequestHook = Callable[[str, str], None]
"""Called with (method, url) before each attempt; tests and benchmarks count requests."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter: attempt n waits up to ``initial * 2**n`` seconds,
    at most ``maximum``; a ``Retry-After`` header (capped at ``max_retry_after``) wins."""

    attempts: int = 5
    initial: float = 0.5
    maximum: float = 8.0
    max_retry_after: float = 30.0

    def delay(self, attempt: int, retry_after: float | None, rand: Callable[[], float]) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        return rand() * min(self.maximum, self.initial * 2.0**attempt)


class ApiFailure(Exception):
    """A Google API call failed. The message is Google's (names and reasons, never values)."""

    def __init__(
        self,
        service: str,
        http_status: int,
        status: str,
        message: str,
        *,
        retriable: bool,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.service = service
        self.http_status = http_status  # 0: no HTTP answer (connection failure, timeout)
        self.status = status  # Google's status name (NOT_FOUND) or OAuth error (invalid_grant)
        self.message = message
        self.retriable = retriable
        self.retry_after = retry_after  # seconds the server asked us to wait

    def waiting(self, delay: float) -> ApiFailure:
        """This failure, noting that a retry after ``delay`` seconds would pass the deadline."""
        note = f"{self.message} (not retried: waiting {delay:g}s would pass the mount's deadline)"
        return ApiFailure(
            self.service,
            self.http_status,
            self.status,
            note,
            retriable=self.retriable,
            retry_after=self.retry_after,
        )

    @property
    def throttled(self) -> bool:
        """Google's quota answer: HTTP 429 / ``RESOURCE_EXHAUSTED``."""
        return self.http_status == 429 or self.status == "RESOURCE_EXHAUSTED"

    def as_error(self, message: str) -> ProviderError:
        """The agent error for this failure: throttled (the scheduler backs off Google),
        retriable (kubelet retries) or final."""
        if self.throttled:
            return ProviderThrottled(message, retry_after=self.retry_after)
        return (ProviderUnavailable if self.retriable else ProviderError)(message)

    def describe(self) -> str:
        if not self.http_status:
            return f"{self.service} unreachable: {self.message}"
        status = f" {self.status}" if self.status else ""
        return f"{self.service} answered HTTP {self.http_status}{status}: {self.message}"


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: Mapping[str, str]  # names in lower case
    body: bytes = field(repr=False)  # a secret's payload, an access token


class GoogleHttp:
    """Shared by every mount; created lazily on the event loop, closed by the provider."""

    def __init__(
        self,
        *,
        timeout: float,
        retry: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        on_request: RequestHook | None = None,
    ) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rand = rand
        self._on_request = on_request
        self._session: aiohttp.ClientSession | None = None
        self._opening = asyncio.Lock()
        # HTTPS_PROXY / HTTP_PROXY / NO_PROXY, read once (upstream honours them since v1.11).
        # Not aiohttp's trust_env: that also reads ~/.netrc on every request.
        self._proxies = urllib.request.getproxies_environment()

    async def json(
        self,
        method: str,
        url: str,
        *,
        service: str,
        token: str | None = None,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Call and return the JSON object answered; raise ApiFailure after the last attempt."""
        sent = dict(headers or {})
        if token:
            sent["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            sent["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        attempt = 0
        while True:
            try:
                reply = await self.send(method, url, data=data, headers=sent, service=service)
                return _parse_ok(service, reply)
            except ApiFailure as failure:
                if not failure.retriable or attempt + 1 >= self._retry.attempts:
                    raise
                delay = self._retry.delay(attempt, failure.retry_after, self._rand)
                if not fits(delay):
                    # Waiting would outlast the mount: report what the server said, now.
                    raise failure.waiting(delay) from None
                await self._sleep(delay)
                attempt += 1

    async def send(
        self,
        method: str,
        url: str,
        *,
        service: str,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Reply:
        """One request; transport failures become a retriable ApiFailure (status 0)."""
        session = await self._open()
        if self._on_request is not None:
            self._on_request(method, url)
        # Never past the mount's deadline (common.deadline), whatever the caller asked.
        total = attempt_timeout(timeout or self._timeout.total or 0, service)
        request_timeout = aiohttp.ClientTimeout(total=total)
        try:
            async with session.request(
                method,
                url,
                data=data,
                headers=headers,
                timeout=request_timeout,
                proxy=self._proxy_for(url),
                # Google's APIs never redirect; following one would send the request (and,
                # to the same host, its token) somewhere the settings do not name.
                allow_redirects=False,
            ) as response:
                body = await _read_capped(response, service)
                headers = {name.lower(): value for name, value in response.headers.items()}
                return Reply(response.status, headers, body)
        except aiohttp.ClientSSLError as err:
            # A certificate problem does not heal by retrying.
            raise ApiFailure(service, 0, "", f"TLS error: {err}", retriable=False) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            limit = request_timeout.total or 0
            reason = str(err) or f"no answer within {limit:g}s"
            raise ApiFailure(
                service, 0, "", f"{type(err).__name__}: {reason}", retriable=True
            ) from None

    def _proxy_for(self, url: str) -> str | None:
        if not self._proxies:
            return None
        parts = urlsplit(url)
        host = parts.hostname or ""
        # Not in typeshed, but public and documented alongside getproxies_environment.
        if urllib.request.proxy_bypass_environment(host, self._proxies):  # type: ignore[attr-defined]
            return None
        return self._proxies.get(parts.scheme)

    async def _open(self) -> aiohttp.ClientSession:
        if self._session is not None and not self._session.closed:
            return self._session
        async with self._opening:
            if self._session is None or self._session.closed:
                # Loading the system trust store reads files: not on the event loop.
                context = await run_blocking(ssl.create_default_context)
                connector = aiohttp.TCPConnector(ssl=context)
                self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _read_capped(response: aiohttp.ClientResponse, service: str) -> bytes:
    """The whole body, at most MAX_RESPONSE_BYTES (else a final ApiFailure: a retry would
    fetch it again). A body cut short raises aiohttp's ClientPayloadError, which is retried.
    (``content.read(n)`` would return whatever the first read brought, not the whole body.)"""
    if (response.content_length or 0) > MAX_RESPONSE_BYTES:
        raise _too_large(service, response.status)
    try:
        return await read_capped(response.content, MAX_RESPONSE_BYTES)
    except BodyTooLarge:
        raise _too_large(service, response.status) from None


def _too_large(service: str, status: int) -> ApiFailure:
    message = f"the answer is larger than {MAX_RESPONSE_BYTES} bytes"
    return ApiFailure(service, status, "", message, retriable=False)


def _parse_ok(service: str, reply: Reply) -> dict[str, Any]:
    if reply.status >= 300:
        raise failure_from(service, reply)
    try:
        parsed = json.loads(reply.body)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise ApiFailure(
            service, reply.status, "", "the answer is not a JSON object", retriable=False
        )
    return parsed


def failure_from(service: str, reply: Reply) -> ApiFailure:
    """Google's error shapes: ``{"error": {"code", "message", "status"}}`` for the APIs,
    ``{"error": "invalid_grant", "error_description": ...}`` for STS and OAuth endpoints."""
    status, message = "", ""
    try:
        parsed = json.loads(reply.body) if reply.body.strip() else None
    except ValueError:
        parsed = None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict):
        status = str(error.get("status") or "")
        message = str(error.get("message") or "")
    elif isinstance(error, str) and isinstance(parsed, dict):
        status = error
        message = str(parsed.get("error_description") or "")
    if 300 <= reply.status < 400:
        message = "a redirect, not followed"
    message = " ".join(message.split())[:_MAX_MESSAGE] or "no error message"
    return ApiFailure(
        service,
        reply.status,
        status,
        message,
        retriable=reply.status in RETRIABLE_STATUSES,
        retry_after=parse_retry_after(reply.headers.get("retry-after", ""), time.time()),
    )
