"""The rotation scheduler in a running agent (standalone mode): real CSI socket driven by a
grpcio kubelet, real tmpfs (as root), fake in-process providers, and a manual clock, so no
test waits for an interval to pass."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from agent.errors import ProviderError, ProviderThrottled, ProviderUnavailable
from agent.model import REFRESH_NOW_ANNOTATION, ROTATION_POLL_INTERVAL_ANNOTATION
from tests.support.rotation import INTERVAL, SPC, RotationHarness, eventually, rotation_harness

DUE = INTERVAL * 1.11  # past the interval and its jitter (at most 10 %)


@pytest.fixture
async def harness(agent_root: Path) -> AsyncIterator[RotationHarness]:
    async for running in rotation_harness(agent_root, "fake", "other"):
        yield running


def uid() -> str:
    return str(uuid.uuid4())


def tree(target: str) -> dict[str, tuple[int, int]]:
    """Every entry of a volume (hidden ones too) with its inode and mtime: any write shows."""
    found = {}
    for name in os.listdir(target):
        st = os.lstat(os.path.join(target, name))
        found[name] = (st.st_ino, st.st_mtime_ns)
    return found


async def status(harness: RotationHarness, pod: str, spc: str = SPC) -> dict[str, object]:
    """The status file once the agent wrote what it queued (files are written behind)."""
    await statuses_written(harness)
    path = harness.root / "spc" / "status" / "default" / f"{pod}-default-{spc}.yaml"
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict)
    return document


async def statuses_written(harness: RotationHarness) -> None:
    assert harness.agent.status_files is not None
    await harness.agent.status_files.wait_idle()


# ---- changed and unchanged content ----


async def test_changed_content_is_rotated_with_new_versions(harness: RotationHarness) -> None:
    target = await harness.publish(uid(), pod="web-0")
    harness.provider.files["password"] = b"rotated"
    await harness.advance(DUE)
    assert Path(target, "password").read_bytes() == b"rotated"
    assert harness.fetches() == 2  # the publish, then one rotation
    objects = (await status(harness, "web-0"))["status"]["objects"]  # type: ignore[index]
    versions = {o["id"]: o["version"] for o in objects}
    assert versions == {v.id: v.version for v in harness.provider.result().versions}
    assert harness.metric("rotation_reconcile_total", provider="fake", rotated="true") == 1


async def test_unchanged_content_writes_nothing(harness: RotationHarness) -> None:
    target = await harness.publish(uid(), pod="web-0")
    status_file = harness.root / "spc" / "status" / "default" / "web-0-default-app-secrets.yaml"
    await statuses_written(harness)
    before, status_before = tree(target), status_file.stat().st_mtime_ns
    await harness.advance(DUE)
    assert harness.fetches() == 2  # it did ask the provider
    assert tree(target) == before  # no file, no symlink, no metadata written
    await statuses_written(harness)
    assert status_file.stat().st_mtime_ns == status_before
    assert harness.metric("rotation_reconcile_total", provider="fake", rotated="false") == 1
    # ... and it is not asked again until the next interval
    await harness.advance(INTERVAL / 2)
    assert harness.fetches() == 2
    await harness.advance(INTERVAL * 0.61)
    assert harness.fetches() == 3


async def test_a_failed_rotation_keeps_the_old_content_and_backs_off(
    harness: RotationHarness,
) -> None:
    target = await harness.publish(uid(), pod="web-0")
    before = tree(target)
    harness.provider.error = ProviderError("permission denied reading secret/app")
    await harness.advance(DUE)
    assert tree(target) == before
    assert harness.fetches() == 2
    assert (
        harness.metric(
            "rotation_reconcile_error_total", provider="fake", error_type="GRPCProviderError"
        )
        == 1
    )
    # Retried sooner than a whole interval (failure backoff starts at 10 s), not at once.
    await harness.advance(1)
    assert harness.fetches() == 2
    harness.provider.error = None
    harness.provider.files["password"] = b"fixed"
    await harness.advance(10)
    assert harness.fetches() == 3
    assert Path(target, "password").read_bytes() == b"fixed"


async def test_a_rotation_never_writes_through_a_symlink_planted_above_its_target(
    harness: RotationHarness,
) -> None:
    """Rotation writes go through the same confined writer as publish (agent.fs.confined):
    the pod directory swapped for a symlink to a look-alike tree makes the rotation fail,
    and nothing is written there or in the real volume."""
    pod_uid = uid()
    target = await harness.publish(pod_uid, pod="web-0")
    before = tree(target)
    pod_dir = harness.root / "pods" / pod_uid
    moved = pod_dir.with_name(pod_uid + ".real")
    decoy = harness.root / "decoy"
    decoy_target = decoy / "volumes" / "kubernetes.io~csi" / "secrets" / "mount"
    decoy_target.mkdir(parents=True)
    pod_dir.rename(moved)  # the mount moves along
    pod_dir.symlink_to(decoy)
    try:
        harness.provider.files["password"] = b"rotated"
        await harness.advance(DUE)
        assert harness.fetches() == 2  # fetched, then refused to write
        assert list(decoy_target.iterdir()) == []
        assert tree(str(moved / target.removeprefix(str(pod_dir) + "/"))) == before
        errors = harness.metric(
            "rotation_reconcile_error_total", provider="fake", error_type="FailedToMount"
        )
        assert errors == 1  # logged as rotation.failed: "must not pass through a symlink"
    finally:
        pod_dir.unlink()
        moved.rename(pod_dir)


# ---- coalescing ----


async def test_ten_pods_with_one_identity_cost_one_fetch(harness: RotationHarness) -> None:
    targets = [await harness.publish(uid(), pod=f"web-{i}") for i in range(10)]
    assert harness.fetches() == 10  # first publishes fetch per pod
    harness.provider.files["password"] = b"rotated"
    await harness.advance(DUE)
    assert harness.fetches() == 11
    for target in targets:
        assert Path(target, "password").read_bytes() == b"rotated"
    assert harness.metric("rotation_provider_fetch_total", provider="fake") == 1
    assert harness.metric("rotation_fetches_saved_total", provider="fake") == 9
    assert harness.metric("rotation_reconcile_total", provider="fake", rotated="true") == 10


async def test_ten_identities_are_never_shared(harness: RotationHarness) -> None:
    for i in range(10):
        await harness.publish(uid(), pod=f"web-{i}", service_account=f"sa-{i}")
    await harness.advance(DUE)
    rotations = harness.provider.requests[10:]
    assert len(rotations) == 10
    # Each fetch went out as a pod of that very service account.
    assert sorted(r.identity.service_account for r in rotations) == [f"sa-{i}" for i in range(10)]


async def test_other_differences_split_groups_too(harness: RotationHarness) -> None:
    await harness.publish(uid(), pod="a", token="jwt-a")  # audience "vault"
    await harness.publish(uid(), pod="b")  # no token: another audience set
    await harness.publish(uid(), pod="c", secrets={"clientSecret": "one"})
    await harness.publish(uid(), pod="d", secrets={"clientSecret": "two"})
    await harness.publish(uid(), pod="e", extra={"objectVersion": "7"})
    await harness.publish(uid(), pod="f", extra={"objectVersion": "7"})
    await harness.advance(DUE)
    assert harness.fetches() == 6 + 5  # e and f share; every other pod differs


async def test_the_group_fetches_with_its_freshest_token(harness: RotationHarness) -> None:
    await harness.publish(uid(), pod="a", token="jwt-old", expires="2090-01-01T00:00:00Z")
    await harness.publish(uid(), pod="b", token="jwt-new", expires="2095-01-01T00:00:00Z")
    await harness.publish(uid(), pod="c", token="jwt-mid", expires="2092-01-01T00:00:00Z")
    await harness.advance(DUE)
    assert harness.fetches() == 4
    sent = harness.provider.requests[-1]
    assert sent.identity.name == "b"
    assert sent.identity.tokens["vault"].token == "jwt-new"
    assert "jwt-new" in sent.attributes["csi.storage.k8s.io/serviceAccount.tokens"]


# ---- throttling ----


async def test_a_throttling_provider_backs_off_and_others_carry_on(
    harness: RotationHarness,
) -> None:
    harness.write_spc("other-secrets", provider="other")
    for i in range(3):  # three groups of the throttling provider
        await harness.publish(uid(), pod=f"web-{i}", service_account=f"sa-{i}")
    other = await harness.publish(uid(), pod="api-0", spc="other-secrets")
    harness.provider.error = ProviderThrottled("HTTP 429 Too Many Requests", retry_after=30)
    await harness.advance(DUE)
    # All three groups were due; the first 429 stops the rest only if they have not started.
    throttled_calls = harness.fetches() - 3
    assert 1 <= throttled_calls <= 3
    assert harness.fetches("other") == 2  # unaffected
    assert harness.metric("rotation_provider_backoff_seconds", provider="fake") >= 30
    assert harness.metric("rotation_volumes_due") == 3  # waiting for the provider to reopen
    # Within the Retry-After nothing is sent to the throttling provider, however often the
    # scheduler wakes; the other provider still rotates on its own schedule.
    harness.providers["other"].files["password"] = b"rotated"
    for _ in range(5):
        await harness.advance(5)
    assert harness.fetches() - 3 == throttled_calls
    # After the delay, exactly one fetch probes; still throttled: longer delay, still one.
    await harness.advance(30)
    assert harness.fetches() - 3 == throttled_calls + 1
    await harness.advance(5)
    assert harness.fetches() - 3 == throttled_calls + 1
    # The store recovers: the next probe succeeds and the other groups follow at once.
    harness.provider.error = None
    await harness.advance(300)
    assert harness.fetches() - 3 == throttled_calls + 1 + 3
    assert harness.metric("rotation_provider_backoff_seconds", provider="fake") == 0
    assert Path(other, "password").read_bytes() == b"rotated"


async def test_an_outage_backs_off_each_group_without_blocking_the_provider(
    harness: RotationHarness,
) -> None:
    harness.write_spc("broken", parameters={"objects": "- objectName: broken"})
    healthy = await harness.publish(uid(), pod="web-0")
    await harness.publish(uid(), pod="web-1", spc="broken")

    def fail_for_broken(request: object) -> None:
        if "broken" in getattr(request, "attributes", {}).get("objects", ""):
            raise ProviderUnavailable("cannot reach Vault at https://wrong.example")

    harness.provider.on_mount = fail_for_broken
    harness.provider.files["password"] = b"rotated"
    await harness.advance(DUE)
    assert Path(healthy, "password").read_bytes() == b"rotated"
    assert harness.metric("rotation_provider_backoff_seconds", provider="fake") == 0
    assert (
        harness.metric(
            "rotation_reconcile_error_total", provider="fake", error_type="GRPCProviderError"
        )
        == 1
    )


# ---- per-class interval and refresh-now ----


async def test_a_class_interval_annotation_sets_its_volumes_pace(
    harness: RotationHarness,
) -> None:
    harness.write_spc("fast", annotations={ROTATION_POLL_INTERVAL_ANNOTATION: "30s"})
    harness.write_spc("floored", annotations={ROTATION_POLL_INTERVAL_ANNOTATION: "1s"})
    await harness.rescan()
    await harness.publish(uid(), pod="slow-0")
    await harness.publish(uid(), pod="fast-0", spc="fast")
    await harness.publish(uid(), pod="floored-0", spc="floored")
    await harness.advance(11.5)  # below 10 s is raised to --rotation-min-poll-interval
    assert [r.identity.name for r in harness.provider.requests[3:]] == ["floored-0"]
    await harness.advance(33.5 - 11.5)
    names = sorted(r.identity.name for r in harness.provider.requests[3:])
    assert names.count("fast-0") == 1
    assert "slow-0" not in names
    # An edit of the annotation takes effect without a restart.
    harness.write_spc("fast", annotations={ROTATION_POLL_INTERVAL_ANNOTATION: "10m"})
    await harness.rescan()
    before = [r.identity.name for r in harness.provider.requests].count("fast-0")
    await harness.advance(200)
    assert [r.identity.name for r in harness.provider.requests].count("fast-0") == before


async def test_refresh_now_on_the_class_rotates_at_once_and_only_on_a_change(
    harness: RotationHarness,
) -> None:
    target = await harness.publish(uid(), pod="web-0")
    await harness.advance(20)
    harness.provider.files["password"] = b"rotated"
    harness.write_spc(annotations={REFRESH_NOW_ANNOTATION: "2026-11-30T10:00:00Z"})
    await harness.rescan()
    await harness.settle()
    assert Path(target, "password").read_bytes() == b"rotated"
    assert harness.fetches() == 2
    # The annotation staying in place asks for nothing more.
    await harness.rescan()
    await harness.advance(20)
    assert harness.fetches() == 2
    # A new value asks again, but never sooner than --rotation-min-poll-interval.
    harness.write_spc(annotations={REFRESH_NOW_ANNOTATION: "2026-11-30T10:00:20Z"})
    await harness.rescan()
    await harness.settle()
    assert harness.fetches() == 3
    harness.write_spc(annotations={REFRESH_NOW_ANNOTATION: "2026-11-30T10:00:21Z"})
    await harness.rescan()
    await harness.settle()
    assert harness.fetches() == 3
    await harness.advance(10)
    assert harness.fetches() == 4


# ---- kubelet's republish ----


async def test_a_republish_storm_fetches_nothing_and_refreshes_tokens(
    harness: RotationHarness,
) -> None:
    uids = [uid() for _ in range(10)]
    for n, pod_uid in enumerate(uids):
        await harness.publish(pod_uid, pod=f"web-{n}", token="jwt-0")
    for round_ in range(1, 11):  # kubelet's pod sync, every ten seconds, ten times
        harness.clock.advance(10)
        for n, pod_uid in enumerate(uids):
            await harness.publish(pod_uid, pod=f"web-{n}", token=f"jwt-{round_}")
        await harness.settle()
    assert harness.fetches() == 10  # only the first publishes
    assert harness.metric("node_publish_total", provider="fake", os_type="linux") == 110
    await harness.advance(DUE - 100)
    assert harness.fetches() == 11  # due: one fetch for all ten, with a token kubelet sent last
    assert harness.provider.requests[-1].identity.tokens["vault"].token == "jwt-10"


async def test_volumes_recovered_after_a_restart_wait_for_kubelet(agent_root: Path) -> None:
    pod_uid = uid()
    async for first in rotation_harness(agent_root):
        target = await first.publish(pod_uid, pod="web-0")
        await first.agent.stop()  # a crash or upgrade; the tmpfs stays mounted
        first.agent.table.forget(target)  # (so the fixture's cleanup leaves it to the next)
    async for second in rotation_harness(agent_root):
        assert second.agent.table.get(target) is not None  # adopted from its metadata
        await second.advance(DUE * 3)
        assert second.fetches() == 0  # no tokens, no context: nothing to fetch with
        await second.publish(pod_uid, pod="web-0")  # kubelet's republish brings them
        await second.settle()
        assert second.fetches() == 1  # overdue: rotated at once


# ---- unpublish and rotation ----


async def test_a_volume_unpublished_during_its_fetch_is_not_recreated(
    harness: RotationHarness,
) -> None:
    target = await harness.publish(uid(), pod="web-0")
    harness.provider.gate = asyncio.Event()
    harness.clock.advance(DUE)
    await eventually(lambda: harness.provider.in_flight == 1, "the rotation's fetch started")
    await harness.unpublish(target)
    harness.provider.gate.set()
    await harness.settle()
    assert not os.path.exists(target)
    assert harness.agent.table.get(target) is None
    assert not list((harness.root / "spc" / "status").rglob("*.yaml"))
    assert harness.metric("rotation_reconcile_total", provider="fake", rotated="false") == 0


async def test_a_class_moved_to_another_provider_is_recorded_under_it(
    harness: RotationHarness,
) -> None:
    """The class's provider changed between rotations: the new one is asked, and the volume's
    record (metadata, metrics, unpublish) names it from then on, not the one it was mounted
    with."""
    target = await harness.publish(uid(), pod="web-0")
    harness.write_spc(provider="other")
    await harness.rescan()
    harness.providers["other"].files["password"] = b"from other"
    await harness.advance(DUE)
    assert Path(target, "password").read_bytes() == b"from other"
    assert (harness.fetches("fake"), harness.fetches("other")) == (1, 1)
    record = harness.agent.table.get(target)
    assert record is not None and record.provider == "other"
    assert harness.metric("rotation_reconcile_total", provider="other", rotated="true") == 1
    metadata = yaml.safe_load(Path(target, "..agent-volume.json").read_text())
    assert metadata["provider"] == "other"  # what a restart adopts the volume under
    # Unchanged content with the same versions: still recorded under the new provider.
    await harness.advance(DUE)
    record = harness.agent.table.get(target)
    assert record is not None and record.provider == "other"
