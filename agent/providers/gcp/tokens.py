"""Google access tokens, and what identifies one in the providers' shared credential cache.

Upstream exchanges the pod's token at STS (and impersonates) on every mount (its issue #14);
with rotation every two minutes that is two round trips per volume per rotation, and STS
quotas are per project. Here each token is kept in :class:`CredentialCache` under a key that
holds the pod and the digest of the very credential that bought it (the pod's token, or a
``key.json``): nobody gets a token without presenting the credential behind it, and kubelet
refreshing a pod's token drops what the old one bought.

Google states an absolute expiry; a token is served until ``REFRESH_MARGIN_S`` before it, on
the clock the provider was given (wall-clock seconds), and one without a stated expiry is
used for one mount only (:func:`token_lifetime`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from agent.providers.credential_cache import CredentialCache, PodJwtKey, lifetime_until

# Google's client libraries refresh this long before expiry (google-auth REFRESH_THRESHOLD),
# so a token handed to a request never expires in flight.
REFRESH_MARGIN_S = 225.0
# Beyond this many identities the least recently used token is dropped.
MAX_ENTRIES = 4096


@dataclass(frozen=True, slots=True)
class AccessToken:
    """An OAuth 2.0 bearer token; ``expires_at`` is wall-clock seconds (None: unknown)."""

    value: str = field(repr=False)
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class TokenKey(PodJwtKey):
    """Whose token: the auth mode, where it was obtained, the pod, and what bought it.

    ``pod-adc``: the STS exchange URL and audience, then (for an impersonated token) the IAM
    Credentials endpoint, the service account and its delegates; ``pod_uid`` and the pod token's
    digest. ``key.json``: the key's digest, no pod (pods presenting one key share its token).
    ``provider-adc``: the agent's own credentials, nothing else.
    """

    mode: str
    exchange_url: str = ""
    audience: str = ""
    impersonated: tuple[str, ...] = ()  # IAM endpoint, service account, delegates...
    pod_uid: str = ""
    jwt_sha256: str = ""  # of the pod's token, or of the key.json

    def impersonating(self, endpoint: str, account: str, delegates: tuple[str, ...]) -> TokenKey:
        """The key of the token impersonating ``account`` with this (federated) token."""
        return TokenKey(
            self.mode,
            self.exchange_url,
            self.audience,
            (endpoint, account, *delegates),
            self.pod_uid,
            self.jwt_sha256,
        )


GoogleTokenCache = CredentialCache[TokenKey, AccessToken]


def new_cache(clock: Callable[[], float]) -> GoogleTokenCache:
    """A cache on ``clock`` (wall-clock seconds: Google's expiry times are absolute)."""
    return CredentialCache(clock=clock, max_entries=MAX_ENTRIES)


def token_lifetime(token: AccessToken, now: float) -> tuple[AccessToken, float]:
    """``token`` with the seconds it may be served from ``now`` (the cache's ``fetch`` shape)."""
    return token, lifetime_until(token.expires_at, now, REFRESH_MARGIN_S)
