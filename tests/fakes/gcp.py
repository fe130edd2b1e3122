"""A fake Google Cloud over real HTTP (aiohttp), speaking the documented REST shapes of:

- STS token exchange: ``POST /v1/token`` and securetoken's ``POST /v1/identitybindingtoken``
  (RFC 8693 JSON body; the subject token is verified: signature, issuer, expiry, audience);
- IAM Credentials ``POST /v1/projects/-/serviceAccounts/<email>:generateAccessToken`` (with
  ``delegates``; the caller must hold Token Creator on each link of the chain);
- Secret Manager ``GET /v1/<version>:access``, regional under ``/regional/<location>`` (the
  prefix a test gives as ``GCP_SECRET_MANAGER_REGIONAL_ENDPOINT``), ``dataCrc32c`` as an int64
  string; Parameter Manager ``GET /v1/<version>:render``;
- the OAuth token endpoint for service-account keys ``POST /token`` (JWT bearer assertion);
- the GCE metadata server under ``/computeMetadata/v1`` (``Metadata-Flavor: Google``).

Failure modes: Google's error JSON for 401/403/404/400 FAILED_PRECONDITION, injected statuses
(e.g. 429 with or without ``Retry-After``), a corrupted payload (CRC32C mismatch), per-request
latency, and a gate that holds ``:access`` calls until N are in flight (proves concurrency
without timing anything).
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

import google_crc32c
import jwt
from aiohttp import web

from tests.fakes.gcp_model import CLOUD_PLATFORM, ApiError, CloudState, b64

_ACCESS = re.compile(
    r"/v1/projects/(?P<project>[^/]+)(?:/locations/(?P<location>[^/]+))?"
    r"/secrets/(?P<secret>[^/]+)/versions/(?P<version>[^/:]+):access"
)
_RENDER = re.compile(
    r"/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
    r"/parameters/(?P<parameter>[^/]+)/versions/(?P<version>[^/:]+):render"
)
_GENERATE = re.compile(r"/v1/projects/-/serviceAccounts/(?P<email>[^/:]+):generateAccessToken")
_REGIONAL = re.compile(r"/regional/(?P<location>[^/]+)(?P<rest>/.*)")


@dataclass
class Fault:
    """Answer the next ``times`` requests whose path contains ``match`` with ``status``."""

    match: str
    status: int
    times: int
    retry_after: str | None = None


@dataclass
class StsConfig:
    audience: str  # what the exchange must ask for
    token_audiences: frozenset[str]  # accepted ``aud`` of the subject token
    issuer: str
    public_key: Any  # the cluster's service-account signing key
    pool: str  # for the principal names


@dataclass
class FakeGoogleCloud:
    state: CloudState = field(default_factory=CloudState)
    sts: StsConfig | None = None
    service_account_keys: dict[str, Any] = field(default_factory=dict)  # email -> public key
    metadata: dict[str, str] = field(default_factory=dict)  # path -> value
    node_service_account: str = "node@project.iam.gserviceaccount.com"
    faults: list[Fault] = field(default_factory=list)
    corrupt: set[str] = field(default_factory=set)  # secret IDs answered with flipped bits
    latency: float = 0.0
    token_lifetime: float = 3600.0
    requests: list[tuple[str, str]] = field(default_factory=list)
    clock: Any = time.time
    _hold: tuple[int, asyncio.Event] | None = None
    in_flight: int = 0
    max_in_flight: int = 0
    url: str = ""

    # ---- test controls ----

    def fail(self, match: str, status: int, times: int = 1, retry_after: str | None = None) -> None:
        self.faults.append(Fault(match, status, times, retry_after))

    def hold_access_until(self, count: int) -> None:
        """``:access`` answers wait until ``count`` of them are in flight at once."""
        self._hold = (count, asyncio.Event())

    def count(self, fragment: str) -> int:
        return sum(fragment in path for _, path in self.requests)

    def ksa_principal(self, namespace: str, service_account: str) -> str:
        assert self.sts is not None
        return f"principal://iam.googleapis.com/projects/-/locations/global/workloadIdentityPools/{self.sts.pool}/subject/ns/{namespace}/sa/{service_account}"

    # ---- server ----

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        # rel_url: a request through a proxy carries the absolute URL in its request line.
        path = unquote(request.rel_url.raw_path)
        self.requests.append((request.method, path))
        if self.latency:
            await asyncio.sleep(self.latency)
        fault = self._fault(path)
        if fault is not None:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return _error(
                fault.status, _STATUS_NAMES.get(fault.status, "UNKNOWN"), "injected", headers
            )
        try:
            return await self._route(request, path)
        except ApiError as err:
            return _error(err.code, err.status, err.message)

    def _fault(self, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.match in path and fault.times > 0:
                fault.times -= 1
                return fault
        return None

    async def _route(self, request: web.Request, path: str) -> web.StreamResponse:
        location_prefix = ""
        regional = _REGIONAL.fullmatch(path)
        if regional:
            location_prefix, path = regional["location"], regional["rest"]
        if path.startswith("/computeMetadata/") or path == "/":
            return self._metadata(request, path)
        if request.method == "POST" and path in ("/v1/token", "/v1/identitybindingtoken"):
            return await self._exchange(request)
        if request.method == "POST" and path == "/token":
            return await self._oauth_token(request)
        if request.method == "POST" and (match := _GENERATE.fullmatch(path)):
            return await self._generate(request, match["email"])
        if request.method == "GET" and (match := _ACCESS.fullmatch(path)):
            return await self._access(request, match, location_prefix)
        if request.method == "GET" and (match := _RENDER.fullmatch(path)):
            return self._render(request, match, location_prefix)
        raise ApiError(404, "NOT_FOUND", f"The requested URL {path} was not found on this server.")

    # ---- STS ----

    async def _exchange(self, request: web.Request) -> web.Response:
        body = await _body(request)
        sts = self.sts
        assert sts is not None, "the test did not configure STS"
        expected = {
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
        }
        for key, value in expected.items():
            if body.get(key) != value:
                return _oauth_error("invalid_request", f'Invalid value for "{key}".')
        if CLOUD_PLATFORM not in str(body.get("scope", "")).split():
            return _oauth_error("invalid_scope", "The scope is missing or invalid.")
        if body.get("audience") != sts.audience:
            return _oauth_error(
                "invalid_target",
                'The target service indicated by the "audience" parameters is invalid.',
            )
        try:
            claims = jwt.decode(
                str(body.get("subject_token", "")),
                sts.public_key,
                algorithms=["RS256"],
                audience=list(sts.token_audiences),
                issuer=sts.issuer,
            )
        except jwt.InvalidTokenError as err:
            return _oauth_error(
                "invalid_grant", f"The subject token is invalid: {type(err).__name__}"
            )
        _, _, ns_sa = str(claims["sub"]).partition("system:serviceaccount:")
        namespace, _, account = ns_sa.partition(":")
        principal = self.ksa_principal(namespace, account)
        token = self.state.issue(principal, self.token_lifetime, self.clock())
        return web.json_response(
            {
                "access_token": token,
                "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "token_type": "Bearer",
                "expires_in": int(self.token_lifetime),
            }
        )

    # ---- IAM Credentials ----

    async def _generate(self, request: web.Request, email: str) -> web.Response:
        caller = self.state.caller(request.headers.get("Authorization", ""), self.clock())
        body = await _body(request)
        if CLOUD_PLATFORM not in body.get("scope", []):
            raise ApiError(400, "INVALID_ARGUMENT", "Scope is required.")
        chain = [d.rsplit("/", 1)[-1] for d in body.get("delegates", [])] + [email]
        for account in chain:
            if caller not in self.state.token_creators.get(account, set()):
                raise ApiError(
                    403,
                    "PERMISSION_DENIED",
                    "Permission 'iam.serviceAccounts.getAccessToken' denied on resource "
                    "(or it may not exist).",
                )
            caller = f"serviceAccount:{account}"
        token = self.state.issue(caller, self.token_lifetime, self.clock())
        expiry = time.strftime(
            "%Y-%m-%dT%H:%M:%S.123456789Z", time.gmtime(self.clock() + self.token_lifetime)
        )
        return web.json_response({"accessToken": token, "expireTime": expiry})

    # ---- Secret Manager / Parameter Manager ----

    async def _access(
        self, request: web.Request, match: re.Match[str], regional: str
    ) -> web.Response:
        location = match["location"] or ""
        if location != regional:
            raise ApiError(
                400,
                "INVALID_ARGUMENT",
                f"Location '{location or 'global'}' does not match the endpoint "
                f"('{regional or 'global'}').",
            )
        caller = self.state.caller(request.headers.get("Authorization", ""), self.clock())
        await self._held()
        try:
            name, data = self.state.access(
                caller, match["project"], location, match["secret"], match["version"]
            )
        finally:
            self.in_flight -= 1
        checksum = google_crc32c.value(data)
        if match["secret"] in self.corrupt:
            data = bytes([data[0] ^ 0x01]) + data[1:] if data else b"\x01"
        return web.json_response(
            {"name": name, "payload": {"data": b64(data), "dataCrc32c": str(checksum)}}
        )

    async def _held(self) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        if self._hold is not None:
            count, released = self._hold
            if self.in_flight >= count:
                released.set()
            await released.wait()

    def _render(self, request: web.Request, match: re.Match[str], regional: str) -> web.Response:
        location = "" if match["location"] == "global" else match["location"]
        if location != regional:
            raise ApiError(400, "INVALID_ARGUMENT", "Location does not match the endpoint.")
        caller = self.state.caller(request.headers.get("Authorization", ""), self.clock())
        name, data = self.state.render(
            caller, match["project"], location, match["parameter"], match["version"]
        )
        return web.json_response(
            {"parameterVersion": name, "payload": {"data": b64(data)}, "renderedPayload": b64(data)}
        )

    # ---- OAuth (service-account keys) and the metadata server ----

    async def _oauth_token(self, request: web.Request) -> web.Response:
        body = await _body(request)
        if body.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return _oauth_error("unsupported_grant_type", "Invalid grant_type.")
        assertion = str(body.get("assertion", ""))
        issuer = str(jwt.decode(assertion, options={"verify_signature": False}).get("iss", ""))
        key = self.service_account_keys.get(issuer)
        if key is None:
            return _oauth_error("invalid_grant", "Invalid grant: account not found")
        try:
            claims = jwt.decode(
                assertion,
                key,
                algorithms=["RS256"],
                # google-auth always names Google's token endpoint as the audience.
                audience=["https://oauth2.googleapis.com/token", f"{self.url}/token"],
            )
        except jwt.InvalidTokenError as err:
            return _oauth_error("invalid_grant", f"Invalid JWT: {type(err).__name__}.")
        if CLOUD_PLATFORM not in str(claims.get("scope", "")).split():
            return _oauth_error("invalid_scope", "Invalid OAuth scope.")
        token = self.state.issue(f"serviceAccount:{issuer}", self.token_lifetime, self.clock())
        return web.json_response(
            {"access_token": token, "expires_in": int(self.token_lifetime), "token_type": "Bearer"}
        )

    def _metadata(self, request: web.Request, path: str) -> web.Response:
        flavour = {"Metadata-Flavor": "Google"}
        if path == "/":
            return web.Response(text="ok", headers=flavour)
        if request.headers.get("Metadata-Flavor") != "Google":
            return web.Response(status=403, text="Missing Metadata-Flavor:Google header.")
        key = path.removeprefix("/computeMetadata/v1/").rstrip("/")
        if key == "instance/service-accounts/default/token":
            token = self.state.issue(
                f"serviceAccount:{self.node_service_account}", self.token_lifetime, self.clock()
            )
            body = {
                "access_token": token,
                "expires_in": int(self.token_lifetime),
                "token_type": "Bearer",
            }
            return web.json_response(body, headers=flavour)
        if key == "instance/service-accounts/default":
            info = {
                "email": self.node_service_account,
                "scopes": [CLOUD_PLATFORM],
                "aliases": ["default"],
            }
            return web.json_response(info, headers=flavour)
        if key in self.metadata:
            return web.Response(text=self.metadata[key], headers=flavour)
        return web.Response(status=404, text="Not Found", headers=flavour)


_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def _error(
    code: int, status: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    if status == "RESOURCE_EXHAUSTED" and message == "injected":
        message = (
            "Quota exceeded for quota metric 'Access requests' and limit 'Access requests per "
            "minute per project' of service 'secretmanager.googleapis.com'."
        )
    body = {"error": {"code": code, "message": message, "status": status}}
    return web.json_response(body, status=code, headers=headers)


def _oauth_error(error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=400)


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if request.content_type == "application/json":
        parsed = json.loads(raw or b"{}")
        return parsed if isinstance(parsed, dict) else {}
    return {k: v[0] for k, v in parse_qs(raw.decode()).items()}


@asynccontextmanager
async def serve(
    cloud: FakeGoogleCloud, tls: ssl.SSLContext | None = None, middlewares: Sequence[Any] = ()
) -> AsyncIterator[FakeGoogleCloud]:
    """Run the fake on 127.0.0.1 (a free port), over TLS when given a server context;
    ``cloud.url`` is its base URL. ``middlewares`` go in front of the fake's own routes."""
    app = cloud.app()
    app.middlewares.extend(middlewares)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    port = runner.addresses[0][1]
    cloud.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    try:
        yield cloud
    finally:
        await runner.cleanup()
