"""The GCP token cache: reuse until shortly before expiry, one fetch per key at a time."""

from __future__ import annotations

import asyncio

from agent.providers.gcp.federation import parse_rfc3339
from agent.providers.gcp.tokens import REFRESH_MARGIN_S, AccessToken, TokenCache


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_reused_until_the_refresh_margin() -> None:
    clock = Clock()
    cache = TokenCache(clock=clock)
    fetches = 0

    async def fetch() -> AccessToken:
        nonlocal fetches
        fetches += 1
        return AccessToken(f"t{fetches}", clock.now + 3600)

    assert (await cache.get_or_fetch("k", fetch)).value == "t1"
    clock.now += 3600 - REFRESH_MARGIN_S - 1
    assert (await cache.get_or_fetch("k", fetch)).value == "t1"
    clock.now += 2
    assert (await cache.get_or_fetch("k", fetch)).value == "t2"
    assert fetches == 2


async def test_concurrent_misses_fetch_once() -> None:
    cache = TokenCache(clock=Clock())
    release = asyncio.Event()
    fetches = 0

    async def fetch() -> AccessToken:
        nonlocal fetches
        fetches += 1
        await release.wait()
        return AccessToken("t", 1_000_000.0 + 3600)

    waiters = [asyncio.create_task(cache.get_or_fetch("k", fetch)) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    assert [t.value for t in await asyncio.gather(*waiters)] == ["t"] * 5
    assert fetches == 1


async def test_short_lived_or_unknown_expiry_is_not_cached() -> None:
    clock = Clock()
    cache = TokenCache(clock=clock)
    for expires_at in (None, clock.now + REFRESH_MARGIN_S - 1):
        await cache.get_or_fetch(("k", expires_at), lambda e=expires_at: _token(e))
    assert len(cache) == 0


async def test_bounded_and_expired_entries_pruned() -> None:
    clock = Clock()
    cache = TokenCache(clock=clock, max_entries=3)
    for i in range(5):
        await cache.get_or_fetch(i, lambda: _token(clock.now + 3600))
    assert len(cache) == 3
    assert cache.get(0) is None and cache.get(4) is not None
    clock.now += 3600
    await cache.get_or_fetch("new", lambda: _token(clock.now + 3600))
    assert len(cache) == 1


async def _token(expires_at: float | None) -> AccessToken:
    return AccessToken("t", expires_at)


def test_token_repr_hides_the_value() -> None:
    assert "ya29" not in repr(AccessToken("ya29.secret", 1.0))


def test_rfc3339_with_nanoseconds() -> None:
    assert parse_rfc3339("2024-05-01T10:00:00Z") == 1714557600.0
    assert parse_rfc3339("2024-05-01T10:00:00.123456789Z") == 1714557600.123456
    assert parse_rfc3339("2024-05-01T12:00:00+02:00") == 1714557600.0
    assert parse_rfc3339("soon") is None
    assert parse_rfc3339(None) is None
