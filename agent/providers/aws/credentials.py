"""AWS credentials of one pod, and what identifies them in the cache.

A pod's credentials are bought with its own service account token (IRSA or EKS Pod Identity,
identity.py) and serve only requests that present that very token: the cache key holds the
token's digest with the namespace, service account, method and role, so two pods with different
service accounts never share credentials, and nothing is ever taken from the node's own
environment or instance profile.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

from agent.providers.credential_cache import CredentialCache

Method = Literal["irsa", "pod-identity"]


@dataclass(frozen=True, slots=True)
class AwsCredentials:
    """Temporary credentials; the attribute names are what botocore's signer reads."""

    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    token: str = field(repr=False)
    expires_at: datetime | None = None  # timezone-aware


@dataclass(frozen=True, slots=True)
class IdentityKey:
    """Whose credentials: one pod, its service account, how it authenticated, and the JWT.

    The pod UID keeps pods of one service account from evicting each other's entries when
    each presents its own JWT; the JWT digest is what the credentials were bought with.
    """

    method: Method
    namespace: str
    service_account: str
    role_arn: str  # IRSA's role; empty for Pod Identity (the association decides)
    pod_uid: str
    jwt_sha256: str

    def same_but_jwt(self, other: IdentityKey) -> bool:
        if self.pod_uid != other.pod_uid:  # the common case, decided cheaply
            return False
        return replace(self, jwt_sha256="") == replace(other, jwt_sha256="")


AwsCredentialCache = CredentialCache[IdentityKey, AwsCredentials]
