"""The AWS provider's one aiohttp session: TLS trust, per-attempt timeouts and retries.

agent/providers/aws/transport.py builds each request (signed by botocore, or STS's unsigned
query) and hands it here; every pod's calls share this one connection pool. Retries follow the
SDKs' standard mode (``RetryPolicy``): 3 attempts, exponential backoff with full jitter capped
at 20 s, on throttling, transient errors, 5xx and connection failures (a regional error); the
request is rebuilt, so re-signed, for each attempt, and no attempt outlives the mount's
deadline (common.deadline). The trust store is the system's, or ``AWS_CA_BUNDLE``'s.
"""

from __future__ import annotations

import asyncio
import json
import random
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from agent import __version__
from agent.aio.threads import run_blocking
from agent.errors import ProviderError, ProviderUnavailable
from agent.providers.aws.endpoints import ServiceInfo
from agent.providers.aws.errors import (
    AwsApiError,
    AwsRegionalError,
    describe,
    error_from_reply,
)
from agent.providers.common.bodies import BodyTooLarge, read_capped
from agent.providers.common.deadline import budget, fits, time_left

USER_AGENT = f"secrets-store-agent/{__version__} (aws provider)"
# A secret is at most 64 KiB (Secrets Manager; SSM: 10 parameters of 8 KiB per batch), under
# 400 KiB once JSON-escaped: anything far larger is not an AWS answer and is not buffered.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """The SDKs' standard retry mode; ``sleep`` and ``random`` are injectable for tests."""

    max_attempts: int = 3
    base: float = 1.0
    max_backoff: float = 20.0
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, repr=False)
    random: Callable[[], float] = field(default=random.random, repr=False)

    def delay(self, attempt: int) -> float:
        """Seconds before retry number ``attempt`` (1 for the first retry)."""
        return float(min(self.random() * self.base * 2 ** (attempt - 1), self.max_backoff))


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds per attempt, each capped by the mount's deadline (common.deadline).

    AWS answers these calls in well under a second; 10 s per attempt still rides out a slow
    network, and keeps a hung region's retries short enough for the failover region to be
    asked in time (fetch.py, identity.py give the primary a third of the time left).
    """

    connect: float = 5.0
    attempt: float = 10.0


class AwsHttp:
    """One aiohttp session for every AWS call of the provider; created on first use."""

    def __init__(
        self, ca_bundle: str, *, retry: RetryPolicy | None = None, timeouts: Timeouts | None = None
    ) -> None:
        self.retry = retry or RetryPolicy()
        self._ca_bundle = ca_bundle
        self._timeouts = timeouts or Timeouts()
        self._session: aiohttp.ClientSession | None = None
        self._opening = asyncio.Lock()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get_json(
        self, url: str, headers: Mapping[str, str], timeout: float
    ) -> tuple[int, Any]:
        """A plain GET (the EKS Pod Identity Agent): (status, parsed JSON or None).

        Raises ProviderUnavailable when the address cannot be reached in ``timeout`` seconds.
        """
        session = await self._open()
        try:
            async with session.get(
                url, headers=dict(headers), timeout=aiohttp.ClientTimeout(total=timeout)
            ) as response:
                raw = await read_capped(response.content, MAX_RESPONSE_BYTES)
        except BodyTooLarge as err:
            raise ProviderUnavailable(f"{url}: {err}") from None
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            reason = str(err) if not isinstance(err, TimeoutError) else ""
            reason = reason or f"no answer within {timeout:g}s"
            raise ProviderUnavailable(f"{url}: {type(err).__name__}: {reason}") from None
        try:
            document = json.loads(raw) if raw.strip() else None
        except ValueError:
            document = None
        return response.status, document

    async def with_retries(
        self,
        service: ServiceInfo,
        operation: str,
        region: str,
        protocol: str,
        build: Callable[[], tuple[str, dict[str, str], bytes]],
    ) -> tuple[int, bytes]:
        """POST what ``build`` returns (url, headers, body; called again for each attempt)
        until it succeeds: (status, body); else the last error (AwsApiError or
        AwsRegionalError, described with ``service``, ``operation`` and ``region``)."""
        attempt = 1
        while True:
            timeout = self._attempt_timeout(service, operation, region)
            try:
                url, headers, body = build()
                status, response_headers, raw = await self._send(url, headers, body, timeout)
                if status < 300:
                    return status, raw
                reply = {"status_code": status, "headers": dict(response_headers), "body": raw}
                error = error_from_reply(service.title, operation, region, protocol, reply)
            except BodyTooLarge as err:
                text = describe(service.title, operation, region, "InvalidResponse", str(err))
                raise AwsRegionalError(text) from None
            except aiohttp.ClientSSLError as err:
                # A certificate problem is configuration (AWS_CA_BUNDLE): retrying cannot help.
                text = describe(service.title, operation, region, "TLSError", str(err))
                raise AwsApiError(text) from None
            except (aiohttp.ClientError, TimeoutError, OSError) as err:
                reason = str(err) or type(err).__name__
                if isinstance(err, TimeoutError):
                    reason = f"no answer within {timeout:.3g}s"
                text = describe(service.title, operation, region, "ConnectionError", reason)
                error = AwsRegionalError(text)
            delay = self.retry.delay(attempt)
            if not error.regional or attempt >= self.retry.max_attempts or not fits(delay):
                raise error
            await self.retry.sleep(delay)
            attempt += 1

    def _attempt_timeout(self, service: ServiceInfo, operation: str, region: str) -> float:
        """The attempt's timeout, never past the deadline; once it passed, a regional error
        (the failover region, which has its own share of the time, may still answer)."""
        left = time_left()
        if left is not None and left <= 0:
            text = f"no answer within the {budget() or 0:.3g}s this region was given"
            raise AwsRegionalError(describe(service.title, operation, region, "Timeout", text))
        return self._timeouts.attempt if left is None else min(self._timeouts.attempt, left)

    async def _send(
        self, url: str, headers: dict[str, str], body: bytes, timeout: float
    ) -> tuple[int, Mapping[str, str], bytes]:
        session = await self._open()
        headers["User-Agent"] = USER_AGENT
        limits = aiohttp.ClientTimeout(total=timeout, connect=self._timeouts.connect)
        async with session.post(url, data=body, headers=headers, timeout=limits) as response:
            return (
                response.status,
                response.headers,
                await read_capped(response.content, MAX_RESPONSE_BYTES),
            )

    async def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            async with self._opening:
                if self._session is None:
                    # Reading the CA bundle (or the system store) is disk work: not on the loop.
                    context = await run_blocking(_ssl_context, self._ca_bundle)
                    timeout = aiohttp.ClientTimeout(
                        total=self._timeouts.attempt, connect=self._timeouts.connect
                    )
                    self._session = aiohttp.ClientSession(
                        connector=aiohttp.TCPConnector(ssl=context), timeout=timeout
                    )
        return self._session


def _ssl_context(ca_bundle: str) -> ssl.SSLContext:
    """The TLS context for every AWS endpoint. Blocking (reads the trust store). A bundle that
    cannot be used is configuration: ProviderError naming AWS_CA_BUNDLE (not a connection
    failure to retry, nor a reason to fail over)."""
    if not ca_bundle:
        return ssl.create_default_context()
    try:
        return ssl.create_default_context(cafile=ca_bundle)
    except ssl.SSLError as err:
        why = f"no PEM certificates in it ({err.reason or err.strerror or 'unreadable'})"
    except OSError as err:
        why = f"it cannot be read ({err.strerror or type(err).__name__})"
    raise ProviderError(
        f"AWS_CA_BUNDLE {ca_bundle!r} in the agent's environment: {why}; set it to a PEM file "
        "of the CA certificates to trust, or unset it to trust the system's"
    )
