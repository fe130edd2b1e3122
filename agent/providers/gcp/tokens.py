"""Google access tokens and a cache that reuses each one until shortly before it expires.

Upstream exchanges the pod's token at STS (and impersonates) on every mount (its issue #14);
with rotation every two minutes that is two round trips per volume per rotation, and STS
quotas are per project. Here a federated token is cached under the digest of the very pod token
that bought it, and an impersonated token under the federated token's key plus the service
account and delegates: nobody gets a token without presenting the credential behind it.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field

# Google's client libraries refresh this long before expiry (google-auth REFRESH_THRESHOLD),
# so a token handed to a request never expires in flight.
REFRESH_MARGIN_S = 225.0
# A token without a stated lifetime (or a very short one) is used for one mount only.
# Beyond this many identities the least recently used token is dropped.
MAX_ENTRIES = 4096


@dataclass(frozen=True, slots=True)
class AccessToken:
    """An OAuth 2.0 bearer token; ``expires_at`` is wall-clock seconds (None: unknown)."""

    value: str = field(repr=False)
    expires_at: float | None = None


def digest(secret: str) -> str:
    """What a cache key keeps of a credential: enough to match it, useless to replay."""
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenCache:
    """Tokens by key, each served until ``REFRESH_MARGIN_S`` before its expiry.

    ``get_or_fetch`` coalesces concurrent misses for one key: one fetch, everyone waits for it.
    ``clock`` returns wall-clock seconds (token expiry times are absolute); tests inject one.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        margin: float = REFRESH_MARGIN_S,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self._clock = clock
        self._margin = margin
        self._max_entries = max_entries
        self._entries: OrderedDict[Hashable, AccessToken] = OrderedDict()
        # A lock exists only while some coroutine holds it, so idle keys cost nothing.
        self._locks: weakref.WeakValueDictionary[Hashable, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> AccessToken | None:
        token = self._entries.get(key)
        if token is None:
            return None
        if not self._fresh(token):
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return token

    async def get_or_fetch(
        self, key: Hashable, fetch: Callable[[], Awaitable[AccessToken]]
    ) -> AccessToken:
        token = self.get(key)
        if token is not None:
            return token
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        async with lock:
            token = self.get(key)  # a concurrent caller may have fetched it meanwhile
            if token is not None:
                return token
            token = await fetch()
            self._put(key, token)
            return token

    def _fresh(self, token: AccessToken) -> bool:
        return self._fresh_at(token, self._clock())

    def _put(self, key: Hashable, token: AccessToken) -> None:
        if not self._fresh(token):
            return  # too close to expiry to serve anyone else
        self._entries[key] = token
        self._entries.move_to_end(key)
        now = self._clock()
        for stale in [k for k, t in self._entries.items() if not self._fresh_at(t, now)]:
            del self._entries[stale]
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def _fresh_at(self, token: AccessToken, now: float) -> bool:
        return token.expires_at is not None and now < token.expires_at - self._margin

    def discard(self, value: str) -> None:
        """Forget every entry holding the token ``value``: Google refused it (HTTP 401:
        revoked, or its principal's credentials changed), so the next caller fetches anew
        instead of failing with it until it expires."""
        for key in [k for k, token in self._entries.items() if token.value == value]:
            del self._entries[key]

    def clear(self) -> None:
        self._entries.clear()
