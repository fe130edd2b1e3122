"""A fake Microsoft Entra ID token endpoint and Azure instance metadata service (IMDS).

Entra: ``POST /{tenant}/oauth2/v2.0/token`` with the client-credentials grant, authenticated by
a client secret or by a client assertion (workload identity: a Kubernetes service account
token). Assertions are verified as Entra verifies them against an app's federated identity
credentials: RS256 signature by the trusted issuer's key, ``iss``, ``sub``, ``aud`` and the
validity window; failures answer with the real AADSTS error codes and shapes.

IMDS: ``GET /metadata/identity/oauth2/token?api-version=...&resource=...[&client_id=...]``
with the ``Metadata: true`` header, for the node's system- and user-assigned identities.

Tokens are opaque random strings remembered with their principal, audience and expiry, so the
fake Key Vault can check what it is shown.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

import jwt
from aiohttp import web

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
_NO_MATCH = "No matching federated identity record found for presented assertion"


@dataclass(frozen=True)
class Federation:
    issuer: str
    subject: str
    audience: str = EXCHANGE_AUDIENCE


@dataclass
class App:
    client_id: str
    tenant: str
    secret: str = ""
    federations: list[Federation] = field(default_factory=list)


@dataclass(frozen=True)
class Issued:
    principal: str  # the client ID the token stands for
    audience: str  # the resource, e.g. https://vault.azure.net
    expires_at: float


@dataclass
class FakeEntra:
    tenants: set[str] = field(default_factory=set)
    apps: dict[str, App] = field(default_factory=dict)
    issuer_keys: dict[str, str] = field(default_factory=dict)  # issuer -> public key PEM
    system_identity: str = ""  # IMDS system-assigned identity's client ID ("" = none)
    user_identities: set[str] = field(default_factory=set)
    lifetime: int = 3600
    tokens: dict[str, Issued] = field(default_factory=dict)
    sign_ins: list[tuple[str, str]] = field(default_factory=list)  # (grant kind, client_id)
    last_form: dict[str, str] = field(default_factory=dict)
    unavailable: int = 0  # answer this many token requests with 503 (Entra busy)
    answer_fields: dict[str, object] = field(default_factory=dict)  # put into token answers

    def register_app(self, client_id: str, tenant: str, *, secret: str = "") -> App:
        self.tenants.add(tenant)
        app = self.apps[client_id] = App(client_id, tenant, secret)
        return app

    def federate(self, client_id: str, issuer: str, subject: str) -> None:
        self.apps[client_id].federations.append(Federation(issuer, subject))

    def trust_issuer(self, issuer: str, public_pem: str) -> None:
        self.issuer_keys[issuer] = public_pem

    def validate(self, token: str, audience: str) -> Issued | None:
        issued = self.tokens.get(token)
        if issued is None or issued.expires_at <= time.time() or issued.audience != audience:
            return None
        return issued

    def revoke_all(self) -> None:
        self.tokens.clear()

    def _issue(self, principal: str, resource: str) -> str:
        token = "fake-aad-" + secrets.token_urlsafe(24)
        self.tokens[token] = Issued(principal, resource, time.time() + self.lifetime)
        return token

    # --- Entra ---------------------------------------------------------------------------

    def entra_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)
        return app

    async def _token(self, request: web.Request) -> web.Response:  # noqa: PLR0911 (one per AADSTS)
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.last_form = form
        if self.unavailable:
            self.unavailable -= 1
            return _aad_error(
                503, "temporarily_unavailable", 90033, "A transient error has occurred."
            )
        tenant = request.match_info["tenant"]
        if tenant not in self.tenants:
            return _aad_error(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
        if form.get("grant_type") != "client_credentials":
            return _aad_error(
                400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
            )
        scope = form.get("scope", "")
        if not scope.endswith("/.default"):
            return _aad_error(
                400, "invalid_scope", 1002012, f"The provided value for scope {scope} is not valid."
            )
        client_id = form.get("client_id", "")
        app = self.apps.get(client_id)
        if app is None or app.tenant != tenant:
            return _aad_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{tenant}'.",
            )
        if "client_assertion" in form:
            problem = self._check_assertion(app, form)
            kind = "client_assertion"
        else:
            problem = (
                None
                if app.secret and form.get("client_secret") == app.secret
                else (
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided.",
                )
            )
            kind = "client_secret"
        if problem is not None:
            return _aad_error(*problem)
        self.sign_ins.append((kind, client_id))
        token = self._issue(client_id, scope.removesuffix("/.default"))
        body = {
            "token_type": "Bearer",
            "expires_in": self.lifetime,
            "ext_expires_in": self.lifetime,
            "access_token": token,
        }
        body.update(self.answer_fields)  # a broken or hostile token endpoint
        return web.json_response(body)

    def _check_assertion(  # noqa: PLR0911 (one return per AADSTS error)
        self, app: App, form: dict[str, str]
    ) -> tuple[int, str, int, str] | None:
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            return 400, "invalid_request", 7000012, "client_assertion_type is not supported."
        assertion = form["client_assertion"]
        try:
            claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            return 400, "invalid_request", 50027, "JWT token is invalid or malformed."
        issuer, subject, audience = claims.get("iss"), claims.get("sub"), claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        matches = [f for f in app.federations if f.issuer == issuer]
        if not matches:
            return (
                400,
                "invalid_client",
                700211,
                f"{_NO_MATCH} issuer '{issuer}'.",
            )
        matches = [f for f in matches if f.subject == subject]
        if not matches:
            return (
                400,
                "invalid_client",
                700213,
                f"{_NO_MATCH} subject '{subject}'.",
            )
        if not any(f.audience in audiences for f in matches):
            return (
                400,
                "invalid_client",
                700212,
                f"{_NO_MATCH} audience '{audience}'.",
            )
        key = self.issuer_keys.get(str(issuer))
        if key is None:
            return 400, "invalid_client", 700222, "Unable to fetch the signing keys of the issuer."
        try:
            jwt.decode(
                assertion, key, algorithms=["RS256"], audience=EXCHANGE_AUDIENCE, issuer=str(issuer)
            )
        except jwt.ExpiredSignatureError:
            return (
                400,
                "invalid_client",
                700024,
                "Client assertion is not within its valid time range.",
            )
        except jwt.PyJWTError:
            return 401, "invalid_client", 5002738, "Assertion failed signature validation."
        return None

    # --- IMDS ----------------------------------------------------------------------------

    def imds_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metadata/identity/oauth2/token", self._imds_token)
        return app

    async def _imds_token(self, request: web.Request) -> web.Response:
        if request.headers.get("Metadata") != "true":
            return _imds_error("invalid_request", "Required metadata header not specified")
        if not request.query.get("api-version"):
            return _imds_error(
                "invalid_request", "Required query variable 'api-version' is missing"
            )
        resource = request.query.get("resource", "")
        if not resource:
            return _imds_error("invalid_request", "Required query variable 'resource' is missing")
        client_id = request.query.get("client_id", "")
        if client_id and client_id not in self.user_identities:
            return _imds_error("invalid_request", "Identity not found")
        principal = client_id or self.system_identity
        if not principal:
            return _imds_error("invalid_request", "Identity not found")
        self.sign_ins.append(("imds", principal))
        token = self._issue(principal, resource)
        now = int(time.time())
        body = {
            "access_token": token,
            "client_id": principal,
            "expires_in": str(self.lifetime),
            "expires_on": str(now + self.lifetime),
            "ext_expires_in": str(self.lifetime),
            "not_before": str(now),
            "resource": resource,
            "token_type": "Bearer",
        }
        return web.json_response(body)


def _aad_error(status: int, error: str, code: int, description: str) -> web.Response:
    body = {
        "error": error,
        "error_description": f"AADSTS{code}: {description} Trace ID: {secrets.token_hex(8)}",
        "error_codes": [code],
        "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
        "trace_id": secrets.token_hex(8),
        "correlation_id": secrets.token_hex(8),
    }
    return web.json_response(body, status=status)


def _imds_error(error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=400)
