"""``POST .../serviceaccounts/<name>/token`` (TokenRequest, ``authentication.k8s.io/v1``) and
the JWKS that verifies what it issues.

Checks in the apiserver's order (``pkg/registry/core/serviceaccount/storage/token.go``): body
name/namespace must match the URL (422), the service account must exist (404), then
validation (``expirationSeconds`` at least 600 and at most 2^32: 422), then the bound object:
a Pod (must exist, must run as this service account: 400; its UID must match the reference:
409), a Secret, or a Node; any other kind is 400. Audiences default to the server's.

The token is an RS256 JWT with the claims kube-apiserver puts in a bound token (``iss``,
``sub``, ``aud``, ``exp``, ``iat``, ``nbf``, ``jti`` and ``kubernetes.io`` with namespace,
service account, pod and node), signed by the test session's :class:`JwtSigner`, so a
Vault/OpenBao ``jwt`` auth mount configured with its public key (or this server's JWKS URL)
accepts it."""

from __future__ import annotations

import base64
import datetime
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes.kube.meta import timestamp
from tests.fakes.kube.registry import TypeRegistry
from tests.fakes.kube.status import Cause, bad_request, conflict, invalid, not_found
from tests.fakes.kube.store import Store
from tests.support.jwt_signer import JwtSigner

Object = dict[str, Any]
DEFAULT_EXPIRATION = 3600
MIN_EXPIRATION = 600
MAX_EXPIRATION = 1 << 32


@dataclass(frozen=True)
class IssuedToken:
    """What the fake handed out (never the token itself: tests assert on the request)."""

    namespace: str
    service_account: str
    audiences: tuple[str, ...]
    bound_kind: str | None
    bound_name: str | None
    expiration: datetime.datetime


@dataclass
class TokenIssuer:
    signer: JwtSigner
    audiences: Sequence[str] = ("https://kubernetes.default.svc.cluster.local",)
    issued: list[IssuedToken] = field(default_factory=list)

    def jwks(self) -> Object:
        public = self.signer.key.public_key()
        assert isinstance(public, rsa.RSAPublicKey)
        numbers = public.public_numbers()
        return {
            "keys": [
                {
                    "use": "sig",
                    "kty": "RSA",
                    "kid": self.signer.key_id,
                    "alg": "RS256",
                    "n": _b64url(numbers.n),
                    "e": _b64url(numbers.e),
                }
            ]
        }

    def create(self, store: Store, namespace: str, name: str, body: Object) -> Object:
        types = store.types
        meta = body.get("metadata") or {}
        for key, expected in (("name", name), ("namespace", namespace)):
            if meta.get(key) and meta[key] != expected:
                cause = Cause(
                    f"metadata.{key}",
                    "FieldValueInvalid",
                    f'Invalid value: "{meta[key]}": must match the service account '
                    f"{key} if specified",
                )
                raise invalid("TokenRequest", "authentication.k8s.io", name, [cause])
        account = store.get(types.named("serviceaccounts"), namespace, name)
        if account is None:
            raise not_found("serviceaccounts", "", name)
        spec = dict(body.get("spec") or {})
        spec["audiences"] = list(spec.get("audiences") or self.audiences)
        seconds = int(spec.get("expirationSeconds") or DEFAULT_EXPIRATION)
        spec["expirationSeconds"] = seconds
        _validate_expiration(seconds)
        bound = _bound_objects(store, types, namespace, name, spec.get("boundObjectRef"))
        now = store.clock()
        expires = now + datetime.timedelta(seconds=seconds)
        token = self._sign(
            namespace=namespace,
            account=account,
            audiences=spec["audiences"],
            now=now,
            expires=expires,
            bound=bound,
        )
        ref = spec.get("boundObjectRef") or {}
        self.issued.append(
            IssuedToken(
                namespace, name, tuple(spec["audiences"]), ref.get("kind"), ref.get("name"), expires
            )
        )
        return {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": timestamp(now)},
            "spec": spec,
            "status": {"token": token, "expirationTimestamp": timestamp(expires)},
        }

    def _sign(
        self,
        *,
        namespace: str,
        account: Object,
        audiences: list[str],
        now: datetime.datetime,
        expires: datetime.datetime,
        bound: Object,
    ) -> str:
        private: Object = {
            "namespace": namespace,
            "serviceaccount": {
                "name": account["metadata"]["name"],
                "uid": account["metadata"]["uid"],
            },
            **bound,
        }
        claims = {
            "aud": audiences,
            "exp": int(expires.timestamp()),
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "iss": self.signer.issuer,
            "jti": str(uuid.uuid4()),
            "sub": f"system:serviceaccount:{namespace}:{account['metadata']['name']}",
            "kubernetes.io": private,
        }
        headers = {"kid": self.signer.key_id}
        return jwt.encode(claims, self.signer.key, algorithm="RS256", headers=headers)


def _validate_expiration(seconds: int) -> None:
    if seconds < MIN_EXPIRATION:
        message = f"Invalid value: {seconds}: may not specify a duration less than 10 minutes"
    elif seconds > MAX_EXPIRATION:
        message = f"Invalid value: {seconds}: may not specify a duration larger than 2^32 seconds"
    else:
        return
    cause = Cause("spec.expirationSeconds", "FieldValueInvalid", message)
    raise invalid("TokenRequest", "authentication.k8s.io", "", [cause])


def _bound_objects(
    store: Store, types: TypeRegistry, namespace: str, account: str, ref: Object | None
) -> Object:
    """The ``kubernetes.io`` claims naming the bound pod (and its node) or secret."""
    if not ref:
        return {}
    kind, api_version, name = ref.get("kind"), ref.get("apiVersion", "v1"), ref.get("name", "")
    if api_version != "v1" or kind not in ("Pod", "Secret"):
        raise bad_request(f"cannot bind token to object of type {api_version}, Kind={kind}")
    plural = "pods" if kind == "Pod" else "secrets"
    obj = store.get(types.named(plural), namespace, name)
    if obj is None:
        raise not_found(plural, "", name)
    if kind == "Pod" and (obj.get("spec") or {}).get("serviceAccountName") != account:
        raise bad_request(
            f'cannot bind token for serviceaccount "{account}" to pod running '
            "with different serviceaccount name."
        )
    uid = obj["metadata"]["uid"]
    if ref.get("uid") and ref["uid"] != uid:
        raise conflict(
            kind,
            "",
            name,
            f"the UID in the bound object reference ({ref['uid']}) "
            "does not match the UID in record. The object might have been deleted "
            "and then recreated",
        )
    claims: Object = {kind.lower(): {"name": name, "uid": uid}}
    node = (obj.get("spec") or {}).get("nodeName") if kind == "Pod" else None
    if node:
        claims["node"] = {"name": node}
    return claims


def _b64url(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
