"""Google tokens in the providers' shared cache: served until shortly before their absolute
expiry, never without a known one, one fetch per key at a time, dropped by value on a 401, and
kubelet refreshing a pod's token drops what the old token bought (that pod's only)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable

from agent.providers.gcp.federation import parse_rfc3339
from agent.providers.gcp.tokens import (
    REFRESH_MARGIN_S,
    AccessToken,
    TokenKey,
    new_cache,
    token_lifetime,
)

POD = TokenKey("pod-adc", "https://sts", "aud", (), "uid-1", "jwt-1")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_reused_until_the_refresh_margin() -> None:
    clock = Clock()
    cache = new_cache(clock)
    fetches = 0

    async def fetch() -> tuple[AccessToken, float]:
        nonlocal fetches
        fetches += 1
        return token_lifetime(AccessToken(f"t{fetches}", clock.now + 3600), clock.now)

    assert (await cache.get_or_fetch(POD, fetch)).value == "t1"
    clock.now += 3600 - REFRESH_MARGIN_S - 1
    assert (await cache.get_or_fetch(POD, fetch)).value == "t1"
    clock.now += 2
    assert (await cache.get_or_fetch(POD, fetch)).value == "t2"
    assert fetches == 2


async def test_concurrent_misses_fetch_once() -> None:
    clock = Clock()
    cache = new_cache(clock)
    release = asyncio.Event()
    fetches = 0

    async def fetch() -> tuple[AccessToken, float]:
        nonlocal fetches
        fetches += 1
        await release.wait()
        return token_lifetime(AccessToken("t", clock.now + 3600), clock.now)

    waiters = [asyncio.create_task(cache.get_or_fetch(POD, fetch)) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    assert [t.value for t in await asyncio.gather(*waiters)] == ["t"] * 5
    assert fetches == 1


async def test_short_lived_or_unknown_expiry_is_not_cached() -> None:
    clock = Clock()
    cache = new_cache(clock)
    for i, expires_at in enumerate((None, clock.now + REFRESH_MARGIN_S - 1)):
        token = AccessToken("t", expires_at)
        key = dataclasses.replace(POD, pod_uid=f"uid-{i}")
        assert await cache.get_or_fetch(key, serving(token, clock)) is token
    assert len(cache) == 0


async def test_a_refreshed_pod_token_drops_what_the_old_one_bought() -> None:
    clock = Clock()
    cache = new_cache(clock)
    later = clock.now + 3600
    impersonated = POD.impersonating("https://iam", "gsa@p.iam", ("mid@p.iam",))
    other_pod = dataclasses.replace(POD, pod_uid="uid-2", jwt_sha256="jwt-2")
    for key in (POD, impersonated, other_pod):
        await cache.get_or_fetch(key, serving(AccessToken("t", later), clock))
    assert len(cache) == 3
    refreshed = dataclasses.replace(POD, jwt_sha256="jwt-1b")
    await cache.get_or_fetch(refreshed, serving(AccessToken("t2", later), clock))
    assert cache.get(POD) is None  # the old federated token of that pod
    assert cache.get(other_pod) is not None  # another pod of the service account keeps its own
    again = refreshed.impersonating("https://iam", "gsa@p.iam", ("mid@p.iam",))
    await cache.get_or_fetch(again, serving(AccessToken("t3", later), clock))
    assert cache.get(impersonated) is None
    assert len(cache) == 3


async def test_key_json_tokens_are_not_tied_to_a_pod() -> None:
    clock = Clock()
    cache = new_cache(clock)
    later = clock.now + 3600
    for digest in ("key-a", "key-b"):  # two namespaces' keys: two identities, both kept
        key = TokenKey("key.json", jwt_sha256=digest)
        await cache.get_or_fetch(key, serving(AccessToken(digest, later), clock))
    assert len(cache) == 2


async def test_a_refused_token_is_forgotten_under_every_key() -> None:
    clock = Clock()
    cache = new_cache(clock)
    refused = AccessToken("refused", clock.now + 3600)
    kept = AccessToken("kept", clock.now + 3600)
    second = dataclasses.replace(POD, pod_uid="uid-2")
    await cache.get_or_fetch(POD, serving(refused, clock))
    await cache.get_or_fetch(second, serving(kept, clock))
    cache.forget(refused)
    assert cache.get(POD) is None
    assert cache.get(second) is kept


def serving(token: AccessToken, clock: Clock) -> Callable[[], Awaitable[tuple[AccessToken, float]]]:
    """A fetch that answers ``token`` (with its lifetime from the clock's now)."""

    async def fetch() -> tuple[AccessToken, float]:
        return token_lifetime(token, clock.now)

    return fetch


def test_token_repr_hides_the_value() -> None:
    assert "ya29" not in repr(AccessToken("ya29.secret", 1.0))


def test_rfc3339_with_nanoseconds() -> None:
    assert parse_rfc3339("2024-05-01T10:00:00Z") == 1714557600.0
    assert parse_rfc3339("2024-05-01T10:00:00.123456789Z") == 1714557600.123456
    assert parse_rfc3339("2024-05-01T12:00:00+02:00") == 1714557600.0
    assert parse_rfc3339("soon") is None
    assert parse_rfc3339(None) is None
