"""AWS calls over the agent's aiohttp: botocore signs, resolves endpoints and parses errors.

Why not aiobotocore (docs/benchmarks.md, "AWS library"): it would cost about 20 MiB more per
node, a client (with its own connection pool) per pod identity, service and region, and a
credential chain that could fall back to the node's own identity. Here one connection pool
serves every pod, and each request is signed with the credentials of the pod it is for; there
is no chain to fall back on.

Requests are JSON 1.1 (Secrets Manager, SSM): the body is the operation's JSON and the reply is
JSON, so no service model is loaded for them. STS uses the query protocol, serialized and parsed
by botocore from its (small) STS model. Retries follow the SDKs' standard mode: 3 attempts,
exponential backoff with full jitter capped at 20 s, on throttling, transient errors, 5xx and
connection failures; a request is re-signed for each attempt.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp

from agent import __version__
from agent.aio.threads import run_blocking
from agent.errors import ProviderUnavailable
from agent.providers.aws.credentials import AwsCredentials
from agent.providers.aws.endpoints import (
    SECRETS_MANAGER,
    SSM,
    STS,
    AwsEnvironment,
    EndpointResolver,
    ServiceInfo,
)
from agent.providers.aws.errors import (
    AwsApiError,
    AwsRegionalError,
    describe,
    error_from_reply,
)
from agent.providers.common.bodies import BodyTooLarge, read_capped

# botocore's DEBUG lines print canonical requests, which include the session token header.
logging.getLogger("botocore").setLevel(logging.INFO)

USER_AGENT = f"secrets-store-agent/{__version__} (aws provider)"
# A secret is at most 64 KiB (Secrets Manager; SSM: 10 parameters of 8 KiB per batch), under
# 400 KiB once JSON-escaped: anything far larger is not an AWS answer and is not buffered.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
_JSON_TARGETS = {"secretsmanager": "secretsmanager", "ssm": "AmazonSSM"}


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
    connect: float = 5.0
    attempt: float = 15.0  # one request; a hung region must leave time for the failover


class AwsTransport:
    """One aiohttp session for every AWS call of the provider; created on first use."""

    def __init__(
        self,
        environment: AwsEnvironment,
        *,
        retry: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
    ) -> None:
        self.environment = environment
        self.endpoints = EndpointResolver(environment)
        self.retry = retry or RetryPolicy()
        self._timeouts = timeouts or Timeouts()
        self._session: aiohttp.ClientSession | None = None
        self._opening = asyncio.Lock()
        self._loading = asyncio.Lock()
        self._loaded = False
        self._sts_operation: Any = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call_json(
        self,
        service: ServiceInfo,
        operation: str,
        region: str,
        params: Mapping[str, Any],
        credentials: AwsCredentials,
    ) -> dict[str, Any]:
        """A signed JSON 1.1 call; the reply's JSON object, or AwsApiError."""
        await self._load_botocore()
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import ReadOnlyCredentials

        endpoint = self.endpoints.resolve(service, region)
        body = json.dumps(params).encode()
        headers = {
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": f"{_JSON_TARGETS[service.name]}.{operation}",
        }

        def signed() -> tuple[str, dict[str, str], bytes]:
            request = AWSRequest("POST", endpoint.url + "/", data=body, headers=dict(headers))
            keys = ReadOnlyCredentials(
                credentials.access_key, credentials.secret_key, credentials.token
            )
            SigV4Auth(keys, endpoint.signing_name, endpoint.signing_region).add_auth(request)
            return str(request.url), dict(request.headers.items()), body

        status, raw = await self._with_retries(service, operation, region, "json", signed)
        try:
            reply = json.loads(raw) if raw.strip() else {}
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            message = describe(service.title, operation, region, "InvalidResponse", "not JSON")
            raise AwsRegionalError(message, status=status)
        return reply

    async def assume_role_with_web_identity(
        self, region: str, params: Mapping[str, str]
    ) -> dict[str, Any]:
        """STS AssumeRoleWithWebIdentity: unsigned (the web identity token is the proof)."""
        await self._load_botocore()
        from botocore.exceptions import ParamValidationError
        from botocore.parsers import ResponseParserError, create_parser
        from botocore.serialize import create_serializer

        operation = self._sts_model()
        try:
            request = create_serializer("query").serialize_to_request(dict(params), operation)
        except ParamValidationError as err:
            # The model's constraints (a role ARN of at least 20 characters, a token of at
            # least 4): the report names the parameter and the limit, never the value.
            text = " ".join(str(err.kwargs.get("report", "")).split())
            message = describe(STS.title, operation.name, region, "InvalidParameter", text)
            raise AwsApiError(message, code="InvalidParameter") from None
        endpoint = self.endpoints.resolve(STS, region)
        body = urlencode(request["body"]).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}

        def unsigned() -> tuple[str, dict[str, str], bytes]:
            return endpoint.url + "/", dict(headers), body

        name = operation.name
        status, raw = await self._with_retries(STS, name, region, "query", unsigned)
        reply = {"status_code": status, "headers": {}, "body": raw}
        try:
            parsed: dict[str, Any] = create_parser("query").parse(reply, operation.output_shape)
        except (ResponseParserError, KeyError, ValueError):
            # A proxy's page, an empty body, a malformed Expiration: never quote the body (a
            # real answer holds credentials).
            text = f"not an {name} answer ({len(raw)} bytes)"
            raise AwsRegionalError(
                describe(STS.title, name, region, "InvalidResponse", text), status=status
            ) from None
        return parsed

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

    async def _with_retries(
        self,
        service: ServiceInfo,
        operation: str,
        region: str,
        protocol: str,
        build: Callable[[], tuple[str, dict[str, str], bytes]],
    ) -> tuple[int, bytes]:
        attempt = 1
        while True:
            try:
                url, headers, body = build()
                status, response_headers, raw = await self._send(url, headers, body)
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
                    reason = f"no answer within {self._timeouts.attempt:g}s"
                text = describe(service.title, operation, region, "ConnectionError", reason)
                error = AwsRegionalError(text)
            if not error.regional or attempt >= self.retry.max_attempts:
                raise error
            await self.retry.sleep(self.retry.delay(attempt))
            attempt += 1

    async def _send(
        self, url: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Mapping[str, str], bytes]:
        session = await self._open()
        headers["User-Agent"] = USER_AGENT
        async with session.post(url, data=body, headers=headers) as response:
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
                    context = await run_blocking(_ssl_context, self.environment.ca_bundle)
                    timeout = aiohttp.ClientTimeout(
                        total=self._timeouts.attempt, connect=self._timeouts.connect
                    )
                    self._session = aiohttp.ClientSession(
                        connector=aiohttp.TCPConnector(ssl=context), timeout=timeout
                    )
        return self._session

    async def _load_botocore(self) -> None:
        """Import botocore and read its JSON files (endpoint rule sets, partitions, the STS
        model) once, in a worker thread: about 0.1 s of CPU and disk reads that would stall
        every other volume's publish if done on the event loop by the first AWS call."""
        if self._loaded:
            return
        async with self._loading:
            if not self._loaded:
                await run_blocking(self._load)
                self._loaded = True

    def _load(self) -> None:
        import botocore.auth
        import botocore.awsrequest
        import botocore.credentials
        import botocore.parsers
        import botocore.serialize  # noqa: F401 (imported for the calls that follow)

        self.endpoints.load(SECRETS_MANAGER, SSM, STS)
        self._sts_model()

    def _sts_model(self) -> Any:
        if self._sts_operation is None:
            from botocore.model import ServiceModel

            service = self.endpoints.loader.load_service_model("sts", "service-2")
            self._sts_operation = ServiceModel(service).operation_model("AssumeRoleWithWebIdentity")
        return self._sts_operation


def _ssl_context(ca_bundle: str) -> ssl.SSLContext:
    if ca_bundle:
        return ssl.create_default_context(cafile=ca_bundle)
    return ssl.create_default_context()
