"""Sign Kubernetes-service-account-like JWTs for tests.

A Vault/OpenBao ``jwt`` auth mount configured with :attr:`JwtSigner.public_pem` validates these
tokens exactly as it would validate kubelet-issued ones, so the real login path runs.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"


@dataclass
class JwtSigner:
    issuer: str = DEFAULT_ISSUER
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
        repr=False,
    )
    key_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def public_pem(self) -> str:
        return (
            self.key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def sign(
        self,
        *,
        namespace: str,
        service_account: str,
        audience: str | list[str],
        pod_name: str = "pod",
        pod_uid: str | None = None,
        ttl: int = 600,
        extra: Mapping[str, object] | None = None,
    ) -> str:
        """A token shaped like a kubelet projected service account token."""
        now = int(time.time())
        claims: dict[str, object] = {
            "iss": self.issuer,
            "sub": f"system:serviceaccount:{namespace}:{service_account}",
            "aud": [audience] if isinstance(audience, str) else audience,
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "kubernetes.io": {
                "namespace": namespace,
                "pod": {"name": pod_name, "uid": pod_uid or str(uuid.uuid4())},
                "serviceaccount": {"name": service_account, "uid": str(uuid.uuid4())},
            },
        }
        claims.update(extra or {})
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.key_id})


@pytest.fixture(scope="session")
def jwt_signer() -> JwtSigner:
    """One RSA key per test session (generating keys is the slow part)."""
    return JwtSigner()
