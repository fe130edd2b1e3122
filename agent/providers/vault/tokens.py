"""Vault client tokens cached per pod and service account JWT that logged in.

The cache itself (lifetimes, coalesced logins, eviction when kubelet refreshes the JWT) is
:mod:`agent.providers.credential_cache`; this module says what identifies a Vault token.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from agent.providers.credential_cache import CredentialCache, cache_lifetime, jwt_digest

__all__ = ["TokenCache", "TokenKey", "cache_lifetime", "jwt_digest"]


@dataclass(frozen=True, slots=True)
class TokenKey:
    """Who a token belongs to: one pod, and the one service account JWT Vault accepted for it.

    Vault may bind a role to claims of one pod (``bound_claims`` on the pod name), so a token
    must never serve another pod of the same service account: hence ``pod_uid``, as upstream
    caches one token per pod. The pod UID comes from the request, though, while the JWT is what
    Vault verified; a token is handed out only with the very JWT that bought it. The key keeps
    a SHA-256 digest, never the JWT. kubelet refreshing the JWT thus costs one login.
    """

    address: str
    namespace: str
    auth_mount: str
    role: str
    pod_namespace: str
    service_account: str
    audience: str
    pod_uid: str
    jwt_sha256: str

    def same_but_jwt(self, other: TokenKey) -> bool:
        """Equal but for the JWT: ``other`` holds a token bought with an older (or newer) JWT."""
        if self.pod_uid != other.pod_uid:  # the common case, decided cheaply
            return False
        return replace(self, jwt_sha256="") == replace(other, jwt_sha256="")


TokenCache = CredentialCache[TokenKey, str]
