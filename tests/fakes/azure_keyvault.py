"""A fake Azure Key Vault data plane (REST ``api-version=7.4``), any number of vaults on one
server, told apart by the Host header (``<vault>.<dns suffix>``).

Routes, bodies and failures follow the real service:

- ``GET /{secrets|keys|certificates}/{name}[/{version}]``: a SecretBundle ``{value, id,
  contentType, kid, managed, attributes}``, a KeyBundle ``{key: {kid, kty, n, e | crv, x, y},
  attributes}`` or a CertificateBundle ``{id, kid, sid, x5t, cer, attributes}``; ``latest``
  (no version) is the newest version.
- ``GET /{...}/{name}/versions``: ``{value: [...], nextLink}`` paged by ``maxresults`` and
  ``$skiptoken``, items in an order other than creation (clients must sort).
- No token: ``401`` with ``WWW-Authenticate: Bearer authorization="<authority>/<tenant>",
  resource="<resource>"``. A token for another audience, unknown or expired: ``401``
  ``Unauthorized``. No access policy for the operation: ``403 Forbidden``. A disabled
  version: ``403`` with inner code ``SecretDisabled``. Unknown object or version: ``404``
  ``SecretNotFound`` / ``KeyNotFound`` / ``CertificateNotFound``.
- Injected failures (``fail``): any status with headers (``429`` with ``Retry-After``), for a
  number of matching requests. ``trickle``: bodies written a few bytes at a time.

A certificate is stored as real Key Vault stores it: a certificate version plus a secret and a
key of the same name and version (the secret holds the PKCS#12 or PEM, ``kid`` set; the key is
the certificate's public key as a JWK).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes.azure_entra import FakeEntra
from tests.fakes.trickle import trickled

API_VERSION = "7.4"
KINDS = {"secrets": "secret", "keys": "key", "certificates": "certificate"}
NOT_FOUND = {
    "secrets": "SecretNotFound",
    "keys": "KeyNotFound",
    "certificates": "CertificateNotFound",
}


@dataclass
class Version:
    version: str
    created: int
    enabled: bool
    body: dict[str, Any]


@dataclass
class Failure:
    pattern: re.Pattern[str]
    status: int
    headers: dict[str, str]
    body: bytes
    remaining: int


@dataclass
class FakeVault:
    name: str
    objects: dict[tuple[str, str], list[Version]] = field(default_factory=dict)
    # principal (client ID) -> collection -> permissions ("get", "list")
    access: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    _clock: int = 1_700_000_000

    def allow(self, principal: str, *, permissions: tuple[str, ...] = ("get", "list")) -> None:
        self.access[principal] = {kind: set(permissions) for kind in KINDS}

    def _add(
        self,
        kind: str,
        name: str,
        body: dict[str, Any],
        *,
        enabled: bool = True,
        version: str | None = None,
    ) -> str:
        self._clock += 60
        version = version or secrets.token_hex(16)
        self.objects.setdefault((kind, name), []).append(
            Version(version, self._clock, enabled, body)
        )
        return version

    def add_secret(
        self, name: str, value: str, *, content_type: str | None = None, enabled: bool = True
    ) -> str:
        body: dict[str, Any] = {"value": value, "tags": {}}
        if content_type is not None:
            body["contentType"] = content_type
        return self._add("secrets", name, body, enabled=enabled)

    def add_key(self, name: str, jwk: dict[str, str]) -> str:
        return self._add("keys", name, {"key": dict(jwk, key_ops=["verify", "encrypt"])})

    def add_certificate(
        self, name: str, *, der: bytes, secret_value: str, content_type: str
    ) -> str:
        """A certificate version and its backing secret and key, as Key Vault creates them."""
        version = secrets.token_hex(16)
        thumb = base64.urlsafe_b64encode(hashlib.sha1(der).digest()).rstrip(b"=").decode()  # noqa: S324 (x5t is SHA-1)
        cert_body = {"cer": base64.b64encode(der).decode(), "x5t": thumb, "policy": {}}
        self._add("certificates", name, cert_body, version=version)
        self._clock -= 60
        secret_body = {
            "value": secret_value,
            "contentType": content_type,
            "managed": True,
            "tags": {},
        }
        self._add("secrets", name, secret_body, version=version)
        self._clock -= 60
        public = x509.load_der_x509_certificate(der).public_key()
        self._add("keys", name, {"key": jwk_of(public), "managed": True}, version=version)
        return version

    def disable(self, kind: str, name: str, version: str) -> None:
        for entry in self.objects[(kind, name)]:
            if entry.version == version:
                entry.enabled = False


def jwk_of(public: Any) -> dict[str, str]:
    """An RSA or EC public key as the JSON Web Key Key Vault answers (RFC 7518 §6)."""

    def b64(number: int, size: int) -> str:
        return base64.urlsafe_b64encode(number.to_bytes(size, "big")).rstrip(b"=").decode()

    numbers = public.public_numbers()
    if isinstance(public, rsa.RSAPublicKey):
        n, e = numbers.n, numbers.e
        return {
            "kty": "RSA",
            "n": b64(n, (n.bit_length() + 7) // 8),
            "e": b64(e, (e.bit_length() + 7) // 8),
        }
    size = (public.curve.key_size + 7) // 8
    crv = {256: "P-256", 384: "P-384", 521: "P-521"}[public.curve.key_size]
    return {"kty": "EC", "crv": crv, "x": b64(numbers.x, size), "y": b64(numbers.y, size)}


@dataclass
class FakeKeyVault:
    entra: FakeEntra
    tenant: str
    authority: str = ""  # set once the Entra server listens
    resource: str = "https://vault.localhost"
    page_size: int = 25
    latency: float = 0.0
    vaults: dict[str, FakeVault] = field(default_factory=dict)
    requests: list[tuple[str, str, bool]] = field(default_factory=list)  # (method, path, had token)
    failures: list[Failure] = field(default_factory=list)
    handler_seconds: list[float] = field(default_factory=list)  # per answer, whole handler
    # Authorized requests wait here until this many are in flight: proves concurrency without
    # timing anything (a sequential client times out on it).
    barrier: asyncio.Barrier | None = None
    hang: asyncio.Event | None = None  # set: requests wait for it before answering
    next_link_host: str = ""  # answer paging links pointing at this host instead
    trickle: int = 0  # bytes per write of each answer's body (0: one write); see trickle.py

    def vault(self, name: str) -> FakeVault:
        return self.vaults.setdefault(name, FakeVault(name))

    def fail(
        self,
        pattern: str,
        status: int,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
        code: str = "Throttled",
        body: bytes | None = None,
    ) -> None:
        """Answer ``times`` requests whose path matches ``pattern`` with ``status`` and a Key
        Vault error ``code`` (or ``body`` as it is: what a broken proxy or gateway sends)."""
        if body is None:
            error = {"error": {"code": code, "message": f"Injected failure {status}."}}
            body = json.dumps(error).encode()
        self.failures.append(Failure(re.compile(pattern), status, dict(headers or {}), body, times))

    def gets(self, path_part: str = "") -> int:
        """Authenticated requests whose path contains ``path_part``."""
        return sum(1 for _, path, auth in self.requests if auth and path_part in path)

    @web.middleware
    async def _timed(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """The fake's own time per answer (benchmarks show it beside the agent's)."""
        started = time.perf_counter()
        try:
            return await handler(request)
        finally:
            self.handler_seconds.append(time.perf_counter() - started)

    @web.middleware
    async def _trickled(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        return await trickled(request, await handler(request), self.trickle)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._timed, self._trickled])
        for collection in KINDS:
            app.router.add_get(f"/{collection}/{{name}}/versions", self._versions)
            app.router.add_get(f"/{collection}/{{name}}", self._get)
            app.router.add_get(f"/{collection}/{{name}}/{{version}}", self._get)
        return app

    # --- request pipeline ----------------------------------------------------------------

    async def _prelude(  # noqa: PLR0911 (one return per failure the service answers)
        self, request: web.Request, operation: str
    ) -> tuple[FakeVault, str] | web.Response:
        auth = request.headers.get("Authorization", "")
        self.requests.append((request.method, request.path_qs, bool(auth)))
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.hang is not None:
            await self.hang.wait()
        for failure in self.failures:
            if failure.remaining and failure.pattern.search(request.path):
                failure.remaining -= 1
                return web.Response(
                    body=failure.body,
                    status=failure.status,
                    headers=failure.headers,
                    content_type="application/json",
                )
        if request.query.get("api-version") != API_VERSION:
            return _error(400, "BadParameter", "The specified version of the API is not supported.")
        vault = self.vaults.get(request.host.split(".", 1)[0])
        if vault is None:
            return _error(404, "VaultNotFound", "No such vault.")
        challenge = (
            f'Bearer authorization="{self.authority}{self.tenant}", resource="{self.resource}"'
        )
        if not auth.startswith("Bearer "):
            return web.Response(status=401, headers={"WWW-Authenticate": challenge})
        issued = self.entra.validate(auth.removeprefix("Bearer "), self.resource)
        if issued is None:
            return _error(
                401,
                "Unauthorized",
                "AKV10032: Invalid issuer, or the token is expired or for another audience.",
                headers={"WWW-Authenticate": challenge},
            )
        collection = request.path.split("/")[1]
        if operation not in vault.access.get(issued.principal, {}).get(collection, set()):
            message = (
                f"The user, group or application 'appid={issued.principal}' does not have "
                f"{collection} {operation} permission on key vault '{vault.name};location=local'."
            )
            return _error(403, "Forbidden", message, inner="AccessDenied")
        if self.barrier is not None:
            await asyncio.wait_for(self.barrier.wait(), 5)
        return vault, collection

    async def _get(self, request: web.Request) -> web.Response:
        found = await self._prelude(request, "get")
        if isinstance(found, web.Response):
            return found
        vault, collection = found
        name, wanted = request.match_info["name"], request.match_info.get("version", "")
        versions = vault.objects.get((collection, name), [])
        entry = (
            next((v for v in versions if v.version == wanted), None)
            if wanted
            else (versions[-1] if versions else None)
        )
        if entry is None:
            shown = f"{name}/{wanted}" if wanted else name
            return _error(
                404,
                NOT_FOUND[collection],
                f"A {KINDS[collection]} with (name/id) {shown} was not found in this key vault.",
            )
        if not entry.enabled:
            return _error(
                403,
                "Forbidden",
                f"Operation get is not allowed on a disabled {KINDS[collection]}.",
                inner=f"{KINDS[collection].capitalize()}Disabled",
            )
        return web.json_response(self._bundle(request, collection, name, entry))

    async def _versions(self, request: web.Request) -> web.Response:
        found = await self._prelude(request, "list")
        if isinstance(found, web.Response):
            return found
        vault, collection = found
        name = request.match_info["name"]
        versions = vault.objects.get((collection, name))
        if not versions:
            return _error(
                404,
                NOT_FOUND[collection],
                f"A {KINDS[collection]} with (name/id) {name} was not found in this key vault.",
            )
        # Newest and oldest interleaved: the listing order is not the creation order.
        shuffled = versions[1::2] + versions[0::2]
        size = min(int(request.query.get("maxresults", "25")), self.page_size)
        start = int(request.query.get("$skiptoken", "0"))
        page = shuffled[start : start + size]
        items = [self._item(request, collection, name, v) for v in page]
        next_link = None
        if start + size < len(shuffled):
            host = self.next_link_host or request.host
            query = f"api-version={API_VERSION}&$skiptoken={start + size}&maxresults={size}"
            next_link = f"https://{host}/{collection}/{name}/versions?{query}"
        return web.json_response({"value": items, "nextLink": next_link})

    # --- shapes --------------------------------------------------------------------------

    @staticmethod
    def _id(request: web.Request, collection: str, name: str, version: str) -> str:
        return f"https://{request.host}/{collection}/{name}/{version}"

    def _attributes(self, entry: Version) -> dict[str, Any]:
        return {
            "enabled": entry.enabled,
            "created": entry.created,
            "updated": entry.created,
            "recoveryLevel": "Recoverable+Purgeable",
            "recoverableDays": 90,
        }

    def _bundle(
        self, request: web.Request, collection: str, name: str, entry: Version
    ) -> dict[str, Any]:
        object_id = self._id(request, collection, name, entry.version)
        body = dict(entry.body, attributes=self._attributes(entry))
        if collection == "keys":
            body["key"] = dict(body["key"], kid=object_id)
            return body
        body["id"] = object_id
        if collection == "certificates":
            body["kid"] = self._id(request, "keys", name, entry.version)
            body["sid"] = self._id(request, "secrets", name, entry.version)
        elif body.get("managed"):
            body["kid"] = self._id(request, "keys", name, entry.version)
        return body

    def _item(
        self, request: web.Request, collection: str, name: str, entry: Version
    ) -> dict[str, Any]:
        object_id = self._id(request, collection, name, entry.version)
        item: dict[str, Any] = {"attributes": self._attributes(entry)}
        item["kid" if collection == "keys" else "id"] = object_id
        if "contentType" in entry.body:
            item["contentType"] = entry.body["contentType"]
        return item


def _error(
    status: int, code: str, message: str, *, inner: str = "", headers: dict[str, str] | None = None
) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if inner:
        error["innererror"] = {"code": inner}
    return web.json_response({"error": error}, status=status, headers=headers)
