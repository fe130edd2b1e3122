"""A cache of Vault client tokens, one per pod and service account JWT that logged in.

Rotation re-mounts every volume on a timer; logging in each time would flood Vault with logins
and leak one token per rotation (upstream issue #150). Tokens are reused until shortly before
their TTL ends, and concurrent logins for one key are coalesced behind a per-key lock.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace

# Refresh this long before expiry (and never later than 80% of the TTL) so a token is not
# handed to a read that then races its expiry.
_EXPIRY_MARGIN_S = 10.0
_EXPIRY_FRACTION = 0.8
# Vault reports lease_duration 0 for tokens without a TTL; still re-login now and then.
_UNBOUNDED_TTL_S = 3600.0


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


def jwt_digest(jwt: str) -> str:
    """What a cache key keeps of a JWT: enough to match it, useless to log in with."""
    return hashlib.sha256(jwt.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class _Entry:
    token: str = field(repr=False)
    expires_at: float


def cache_lifetime(ttl: float) -> float:
    """How long a token with this TTL may be served from the cache (0 = do not cache)."""
    if ttl <= 0:
        ttl = _UNBOUNDED_TTL_S
    return max(0.0, min(ttl * _EXPIRY_FRACTION, ttl - _EXPIRY_MARGIN_S))


class TokenCache:
    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, max_entries: int = 1000
    ) -> None:
        self._clock = clock
        self._max_entries = max_entries
        self._entries: OrderedDict[TokenKey, _Entry] = OrderedDict()
        # A lock lives only while some coroutine holds a reference, so idle keys cost nothing.
        self._locks: weakref.WeakValueDictionary[TokenKey, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    def __len__(self) -> int:
        return len(self._entries)

    def lock(self, key: TokenKey) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        return lock

    def get(self, key: TokenKey) -> str | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry.token

    def put(self, key: TokenKey, token: str, ttl: float) -> None:
        # kubelet refreshed the pod's JWT: the token the old JWT bought will never be asked for
        # again. A scan is fine: it runs once per login, which is a network round trip anyway.
        for stale in [k for k in self._entries if k != key and k.same_but_jwt(key)]:
            del self._entries[stale]
        lifetime = cache_lifetime(ttl)
        if lifetime <= 0:
            self._entries.pop(key, None)
            return
        self._entries[key] = _Entry(token, self._clock() + lifetime)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def invalidate(self, key: TokenKey, token: str) -> None:
        """Forget ``token`` if it is still the cached one (another task may have replaced it)."""
        entry = self._entries.get(key)
        if entry is not None and entry.token == token:
            del self._entries[key]

    def clear(self) -> None:
        self._entries.clear()
