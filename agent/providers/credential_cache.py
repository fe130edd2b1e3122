"""A cache of what a pod's service account token bought from a store (a Vault token, AWS
credentials, ...), shared by the providers that log in as the pod.

Rotation re-mounts every volume on a timer; logging in each time would flood the store with
logins (and, for Vault, leak one token per rotation: upstream vault-csi-provider issue #150).
Entries are reused until shortly before they expire, concurrent logins for one key are
coalesced behind a per-key lock, and the key always carries a digest of the very JWT that bought
the entry, so an entry is never handed to a caller that does not present that JWT.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, Protocol, Self, TypeVar

# Refresh this long before expiry (and never later than 80% of the lifetime) so an entry is not
# handed to a request that then races its expiry.
_EXPIRY_MARGIN_S = 10.0
_EXPIRY_FRACTION = 0.8
# A lifetime of 0 means "no TTL" (Vault root-like tokens); still log in again now and then.
_UNBOUNDED_TTL_S = 3600.0


class JwtKeyed(Hashable, Protocol):
    def same_but_jwt(self, other: Self) -> bool:
        """Equal but for the JWT: ``other`` was bought with an older (or newer) JWT."""
        ...


K = TypeVar("K", bound=JwtKeyed)
V = TypeVar("V")


def jwt_digest(jwt: str) -> str:
    """What a cache key keeps of a JWT: enough to match it, useless to log in with."""
    return hashlib.sha256(jwt.encode()).hexdigest()


def cache_lifetime(ttl: float) -> float:
    """How long an entry with this TTL (seconds) may be served from the cache (0 = not at all)."""
    if ttl <= 0:
        ttl = _UNBOUNDED_TTL_S
    return max(0.0, min(ttl * _EXPIRY_FRACTION, ttl - _EXPIRY_MARGIN_S))


@dataclass(frozen=True, slots=True)
class _Entry(Generic[V]):
    value: V = field(repr=False)
    expires_at: float


class CredentialCache(Generic[K, V]):
    """LRU-bounded; ``clock`` is monotonic seconds (injectable for tests)."""

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, max_entries: int = 1000
    ) -> None:
        self._clock = clock
        self._max_entries = max_entries
        self._entries: OrderedDict[K, _Entry[V]] = OrderedDict()
        # A lock lives only while some coroutine holds a reference, so idle keys cost nothing.
        self._locks: weakref.WeakValueDictionary[K, asyncio.Lock] = weakref.WeakValueDictionary()

    def __len__(self) -> int:
        return len(self._entries)

    def lock(self, key: K) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        return lock

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry.value

    def put(self, key: K, value: V, ttl: float) -> None:
        """Keep ``value`` for :func:`cache_lifetime` of ``ttl`` seconds."""
        self.put_for(key, value, cache_lifetime(ttl))

    def put_for(self, key: K, value: V, lifetime: float) -> None:
        """Keep ``value`` for exactly ``lifetime`` seconds (not at all when <= 0), for stores
        whose own refresh rule the caller applies (Entra's ``refresh_in``)."""
        # kubelet refreshed the pod's JWT: what the old JWT bought will never be asked for
        # again. A scan is fine: it runs once per login, which is a network round trip anyway.
        for stale in [k for k in self._entries if k != key and k.same_but_jwt(key)]:
            del self._entries[stale]
        if lifetime <= 0:
            self._entries.pop(key, None)
            return
        self._entries[key] = _Entry(value, self._clock() + lifetime)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def invalidate(self, key: K, value: V) -> None:
        """Forget ``value`` if it is still the cached one (another task may have replaced it)."""
        entry = self._entries.get(key)
        if entry is not None and entry.value == value:
            del self._entries[key]

    def clear(self) -> None:
        self._entries.clear()
