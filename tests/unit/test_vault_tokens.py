"""The Vault token cache: lifetime, expiry, invalidation and bounds."""

from __future__ import annotations

import dataclasses

import pytest

from agent.providers.vault.tokens import TokenCache, TokenKey, cache_lifetime

KEY = TokenKey("http://v", "", "kubernetes", "r", "ns", "sa", "vault", "uid-0", "jwt-0")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("ttl", "lifetime"), [(3600, 2880), (30, 20), (10, 0), (0, 2880), (-1, 2880)]
)
def test_cache_lifetime(ttl: float, lifetime: float) -> None:
    assert cache_lifetime(ttl) == lifetime


def test_token_cache_expires_before_ttl() -> None:
    clock = Clock()
    cache = TokenCache(clock=clock)
    cache.put(KEY, "t1", 100)
    clock.now += 79
    assert cache.get(KEY) == "t1"
    clock.now += 2
    assert cache.get(KEY) is None
    assert len(cache) == 0


def test_short_ttl_is_not_cached() -> None:
    cache = TokenCache(clock=Clock())
    cache.put(KEY, "t1", 5)
    assert cache.get(KEY) is None


def test_invalidate_only_forgets_the_failed_token() -> None:
    cache = TokenCache(clock=Clock())
    cache.put(KEY, "t2", 100)
    cache.invalidate(KEY, "t1")  # a stale failure must not evict a newer token
    assert cache.get(KEY) == "t2"
    cache.invalidate(KEY, "t2")
    assert cache.get(KEY) is None


def test_cache_is_bounded_least_recently_used_first() -> None:
    cache = TokenCache(clock=Clock(), max_entries=2)
    keys = [dataclasses.replace(KEY, pod_uid=f"uid-{i}") for i in range(3)]
    cache.put(keys[0], "a", 100)
    cache.put(keys[1], "b", 100)
    assert cache.get(keys[0]) == "a"  # touch: keys[1] is now the oldest
    cache.put(keys[2], "c", 100)
    assert cache.get(keys[1]) is None
    assert cache.get(keys[0]) == "a"
    assert cache.get(keys[2]) == "c"


def test_token_not_in_repr() -> None:
    cache = TokenCache(clock=Clock())
    cache.put(KEY, "s.supersecret", 100)
    assert "supersecret" not in repr(cache._entries)


def test_a_pods_refreshed_jwt_replaces_its_token() -> None:
    """kubelet refreshed the pod's JWT: the token bought with the old one is never asked for
    again (it is not handed out for the new JWT), so it does not linger in the cache."""
    cache = TokenCache(clock=Clock())
    other_pod = dataclasses.replace(KEY, pod_uid="uid-1")
    refreshed = dataclasses.replace(KEY, jwt_sha256="jwt-1")
    cache.put(KEY, "t0", 100)
    cache.put(other_pod, "t1", 100)
    assert cache.get(refreshed) is None
    cache.put(refreshed, "t2", 100)
    assert cache.get(KEY) is None
    assert cache.get(refreshed) == "t2"
    assert cache.get(other_pod) == "t1"
    assert len(cache) == 2
