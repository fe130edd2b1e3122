"""The rotation scheduler's pure parts: annotations, fetch keys, the throttle, the schedule."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

import pytest

from agent.aio.backoff import BackoffPolicy
from agent.core.pod_info import format_tokens, parse_tokens
from agent.model import (
    FETCH_PER_POD_ANNOTATION,
    POD_NAME,
    POD_UID,
    REFRESH_NOW_ANNOTATION,
    ROTATION_POLL_INTERVAL_ANNOTATION,
    FetchContext,
    PodIdentity,
    SecretProviderClass,
    ServiceAccountToken,
    VolumeRecord,
)
from agent.rotation.keys import fetch_key, freshest
from agent.rotation.policy import (
    RotationSettings,
    class_interval,
    fetches_per_pod,
    refresh_requested,
)
from agent.rotation.schedule import Schedule
from agent.rotation.throttle import ProviderThrottle
from tests.support.clock import ManualClock

SETTINGS = RotationSettings(interval=120.0, min_interval=10.0)


def spc(**annotations: str) -> SecretProviderClass:
    return SecretProviderClass(
        "app",
        "default",
        "vault",
        {"roleName": "r"},
        uid="u1",
        generation=3,
        annotations=annotations,
    )


def record(
    name: str = "web-0",
    *,
    sa: str = "web",
    tokens: dict[str, ServiceAccountToken] | None = None,
    context: dict[str, str] | None = None,
    secrets: dict[str, str] | None = None,
    updated_at: float = 1000.0,
) -> VolumeRecord:
    uid = f"uid-{name}"
    volume_context = {POD_NAME: name, POD_UID: uid, **(context or {})}
    return VolumeRecord(
        target_path=f"/var/lib/kubelet/pods/{uid}/volumes/kubernetes.io~csi/s/mount",
        volume_id=f"v-{name}",
        pod=PodIdentity("default", name, uid, sa, tokens or {}),
        spc_name="app",
        provider="vault",
        updated_at=updated_at,
        context=FetchContext(volume_context, secrets or {}),
    )


# ---- annotations ----


@pytest.mark.parametrize(
    ("annotation", "seconds"),
    [
        (None, 120.0),
        ("30s", 30.0),
        ("1h30m", 5400.0),
        ("2s", 10.0),
        ("soon", 120.0),
        ("2562048h", 120.0),  # past Go's int64 nanoseconds: invalid, as upstream's Go reads it
    ],
)
def test_class_interval(annotation: str | None, seconds: float) -> None:
    given = {ROTATION_POLL_INTERVAL_ANNOTATION: annotation} if annotation else {}
    assert class_interval(spc(**given), SETTINGS).seconds == seconds


def test_refresh_is_edge_triggered() -> None:
    key = REFRESH_NOW_ANNOTATION
    assert not refresh_requested(None, {key: "1"})  # first sight: a start or a relist
    assert refresh_requested({}, {key: "1"})
    assert refresh_requested({key: "1"}, {key: "2"})
    assert not refresh_requested({key: "1"}, {key: "1"})
    assert not refresh_requested({key: "1"}, {})  # removing it asks for nothing


def test_per_pod_opt_out() -> None:
    assert fetches_per_pod(spc(**{FETCH_PER_POD_ANNOTATION: "true"}))
    assert not fetches_per_pod(spc())


# ---- fetch keys ----


def test_pods_of_one_identity_share_a_key() -> None:
    a = record("web-0", tokens={"vault": ServiceAccountToken("jwt-a")})
    b = record("web-1", tokens={"vault": ServiceAccountToken("jwt-b")})
    assert fetch_key(spc(), a, per_pod=False) == fetch_key(spc(), b, per_pod=False)
    assert fetch_key(spc(), a, per_pod=True) != fetch_key(spc(), b, per_pod=True)


@pytest.mark.parametrize(
    "other",
    [
        record("web-1", sa="other"),
        record("web-1", tokens={"aws": ServiceAccountToken("t")}),
        record("web-1", context={"objectVersion": "2"}),
        record("web-1", secrets={"clientSecret": "x"}),
    ],
)
def test_anything_else_splits_keys(other: VolumeRecord) -> None:
    assert fetch_key(spc(), record(), per_pod=False) != fetch_key(spc(), other, per_pod=False)


def test_a_new_class_generation_is_a_new_key() -> None:
    newer = SecretProviderClass(
        "app", "default", "vault", {"roleName": "r"}, uid="u1", generation=4
    )
    assert fetch_key(spc(), record(), per_pod=False) != fetch_key(newer, record(), per_pod=False)


def test_keys_hold_no_secret_and_no_token() -> None:
    key = fetch_key(
        spc(),
        record(tokens={"vault": ServiceAccountToken("jwt-value")}, secrets={"k": "hunter2"}),
        per_pod=False,
    )
    assert "hunter2" not in repr(key)
    assert "jwt-value" not in repr(key)


def test_the_freshest_token_wins() -> None:
    def at(year: int) -> ServiceAccountToken:
        return ServiceAccountToken(f"t{year}", datetime(year, 1, 1, tzinfo=UTC))

    members = [
        record("a", tokens={"v": at(2030)}),
        record("b", tokens={"v": at(2031), "w": at(2029)}),  # its earliest expires first
        record("c", tokens={"v": at(2031)}),
    ]
    assert freshest(members).pod.name == "c"
    assert freshest([record("x"), record("y")]).pod.name == "x"  # no tokens: first


def test_tokens_round_trip_as_kubelet_writes_them() -> None:
    tokens = {"vault": ServiceAccountToken("jwt", datetime(2030, 5, 1, 12, tzinfo=UTC))}
    parsed = parse_tokens(format_tokens(tokens))
    assert parsed == tokens
    assert format_tokens({}) == ""


# ---- throttle ----


def test_a_throttled_provider_waits_then_lets_one_probe_through() -> None:
    changes: list[tuple[str, float]] = []
    policy = BackoffPolicy(initial=2.0, maximum=300.0, jitter=0.0)
    throttle = ProviderThrottle(policy, lambda p, d: changes.append((p, d)))
    first, second = throttle.claim("vault", 0.0), throttle.claim("vault", 0.0)
    assert first is not None and second is not None
    assert throttle.throttled(first, 1.0, retry_after=30.0) == 30.0  # Retry-After wins
    assert throttle.throttled(second, 1.5, retry_after=None) == 29.5  # a straggler: no escalation
    assert throttle.claim("vault", 20.0) is None
    assert throttle.claim("azure", 20.0) is not None  # other providers are unaffected
    assert throttle.wait_until("vault", 20.0) == 31.0
    probe = throttle.claim("vault", 31.0)
    assert probe is not None and probe.probe
    assert throttle.claim("vault", 31.0) is None  # one probe at a time
    assert throttle.wait_until("vault", 31.0) == 31.0  # its end decides
    assert throttle.throttled(probe, 32.0, retry_after=None) == 4.0  # 2 * 2**1
    probe = throttle.claim("vault", 36.0)
    assert probe is not None
    throttle.released(probe)  # an outage says nothing about throttling
    probe = throttle.claim("vault", 36.0)
    assert probe is not None
    throttle.answered(probe)
    assert throttle.claim("vault", 36.0) is not None
    assert throttle.throttled_providers() == []
    assert changes == [("vault", 30.0), ("vault", 4.0), ("vault", 0.0)]


# ---- schedule ----


def test_due_times_spread_by_at_most_the_jitter() -> None:
    schedule = Schedule(SETTINGS)
    dues = [schedule.due_at(record(f"p{i}")) - 1000.0 for i in range(50)]
    assert all(120.0 <= due < 132.0 for due in dues)
    assert len(set(dues)) > 40
    assert schedule.due_at(record("p1")) == schedule.due_at(record("p1"))  # stable


def test_class_intervals_are_learned() -> None:
    schedule = Schedule(SETTINGS)
    fast = spc(**{ROTATION_POLL_INTERVAL_ANNOTATION: "30s"})
    assert schedule.learn_class(fast) is False  # first sight
    assert schedule.interval(record()) == 30.0
    assert schedule.learn_class(spc()) is True


def test_refresh_now_is_floored_at_the_minimum_interval() -> None:
    schedule = Schedule(SETTINGS)
    fresh = record(updated_at=1000.0)
    assert schedule.request_now(fresh, 1003.0) == 1010.0
    assert schedule.due_at(fresh) == 1010.0
    assert schedule.request_now(fresh, 1050.0) == 1010.0  # the earlier request stands
    schedule.succeeded(fresh.target_path)
    assert schedule.due_at(fresh) > 1100.0


def test_failures_back_off_exponentially_up_to_a_ceiling() -> None:
    settings = RotationSettings(
        interval=120.0, failure_backoff=BackoffPolicy(initial=10.0, maximum=300.0, jitter=0.0)
    )
    schedule = Schedule(settings, random.Random(1))  # noqa: S311
    failing = record()
    delays = [schedule.failed(failing, 0.0) for _ in range(8)]
    assert delays == [10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0, 300.0]
    assert schedule.failures(failing.target_path) == 8
    schedule.prune([])
    assert schedule.failures(failing.target_path) == 0


# ---- the manual clock ----


async def test_the_manual_clock_wakes_sleepers_when_advanced() -> None:
    clock = ManualClock(start=100.0)
    woke: list[float] = []

    async def sleeper(until: float) -> None:
        await clock.sleep_until(until)
        woke.append(clock.now())

    tasks = [asyncio.ensure_future(sleeper(t)) for t in (110.0, 105.0, 200.0)]
    await asyncio.sleep(0)
    clock.advance(10)
    await asyncio.sleep(0)
    assert woke == [110.0, 110.0]
    assert clock.sleepers == 1
    clock.advance(90)
    await asyncio.gather(*tasks)
    assert woke[-1] == 200.0
