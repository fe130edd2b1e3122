"""AWS calls over the agent's aiohttp: botocore signs, resolves endpoints and parses errors.

Why not aiobotocore (docs/benchmarks.md, "AWS library"): it would cost about 20 MiB more per
node, a client (with its own connection pool) per pod identity, service and region, and a
credential chain that could fall back to the node's own identity. Here one connection pool
serves every pod, and each request is signed with the credentials of the pod it is for; there
is no chain to fall back on.

Requests are JSON 1.1 (Secrets Manager, SSM): the body is the operation's JSON and the reply is
JSON, so no service model is loaded for them. STS uses the query protocol, serialized and parsed
by botocore from its (small) STS model. Sending, timeouts and retries (the SDKs' standard mode;
a request is re-signed for each attempt) are agent/providers/aws/http.py's.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from agent.aio.threads import run_loading
from agent.providers.aws.credentials import AwsCredentials
from agent.providers.aws.endpoints import (
    SECRETS_MANAGER,
    SSM,
    STS,
    AwsEnvironment,
    EndpointResolver,
    ServiceInfo,
)
from agent.providers.aws.errors import AwsApiError, AwsRegionalError, describe
from agent.providers.aws.http import AwsHttp, RetryPolicy, Timeouts

# botocore's DEBUG lines print canonical requests, which include the session token header.
logging.getLogger("botocore").setLevel(logging.INFO)

_JSON_TARGETS = {"secretsmanager": "secretsmanager", "ssm": "AmazonSSM"}


class AwsTransport:
    """Every AWS call of the provider, over one ``AwsHttp`` session."""

    def __init__(
        self,
        environment: AwsEnvironment,
        *,
        retry: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
    ) -> None:
        self.environment = environment
        self.endpoints = EndpointResolver(environment)
        self.http = AwsHttp(environment.ca_bundle, retry=retry, timeouts=timeouts)
        self._loading = asyncio.Lock()
        self._loaded = False
        self._sts_operation: Any = None

    async def close(self) -> None:
        await self.http.close()

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

        status, raw = await self.http.with_retries(service, operation, region, "json", signed)
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
        status, raw = await self.http.with_retries(STS, name, region, "query", unsigned)
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
        """A plain GET (the EKS Pod Identity Agent): ``AwsHttp.get_json``."""
        return await self.http.get_json(url, headers, timeout)

    async def _load_botocore(self) -> None:
        """Import botocore and read its JSON files (endpoint rule sets, partitions, the STS
        model) once, in the library-loading thread: about 0.1 s of CPU and disk reads that would
        stall every other volume's publish if done on the event loop by the first AWS call."""
        if self._loaded:
            return
        async with self._loading:
            if not self._loaded:
                await run_loading(self._load)
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
