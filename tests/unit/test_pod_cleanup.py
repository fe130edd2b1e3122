"""Releasing a gone pod's volumes, and Warning events for owner-fixable publish failures, against
in-memory ports (the same Journal the publish core tests use)."""

from __future__ import annotations

import asyncio

import pytest

from agent.aio.locks import KeyedLock
from agent.core.mount_table import MountTable
from agent.core.pod_cleanup import ReleasePodVolumes
from agent.core.publish import PublishPorts, PublishSettings, PublishVolume
from agent.errors import ProviderError, ProviderUnavailable
from agent.model import PodIdentity, VolumeRecord
from agent.providers.registry import ProviderRegistry
from tests.support.events import RecordedEvents
from tests.support.fake_provider import FakeProvider
from tests.unit.test_publish_core import TARGET, Journal, request


def _record(target: str, uid: str) -> VolumeRecord:
    return VolumeRecord(target, "v", PodIdentity("ns", "web-0", uid), "app", "fake")


async def test_release_forgets_deletes_status_and_unmounts_after_the_grace() -> None:
    journal, table = Journal(), MountTable()
    journal.mounted |= {"/a", "/b", "/c"}
    for target, uid in (("/a", "gone"), ("/b", "gone"), ("/c", "alive")):
        table.put(_record(target, uid))
    grace = asyncio.Event()

    async def sleep(_seconds: float) -> None:
        await grace.wait()

    release = ReleasePodVolumes(journal, journal, table, KeyedLock(), grace=60, sleep=sleep)
    assert await release("gone", "deleted") == 2
    assert {r.target_path for r in table} == {"/c"}
    assert journal.events.count("status.delete") == 2
    assert journal.mounted == {"/a", "/b", "/c"}  # kubelet still has the grace period
    grace.set()
    await release.wait()
    assert journal.mounted == {"/c"}
    await release.close()


async def test_release_after_kubelet_unpublished_is_harmless_and_close_drops_timers() -> None:
    journal, table = Journal(), MountTable()
    table.put(_record("/a", "gone"))
    release = ReleasePodVolumes(journal, journal, table, KeyedLock(), grace=3600)
    assert await release("gone", "deleted") == 1
    assert await release("gone", "deleted") == 0  # a second event finds nothing
    await release.close()  # the pending unmount is dropped, not left running
    assert journal.events.count("unmount") == 0


def _publish(journal: Journal, provider: FakeProvider, events: RecordedEvents) -> PublishVolume:
    registry = ProviderRegistry(
        timeout=5,
        version_key=b"k",
        factories={"fake": lambda _c: provider},
        load_entry_points=False,
    )
    ports = PublishPorts(journal, registry, journal, journal, journal, journal, journal, events)
    return PublishVolume(ports, PublishSettings(node_name="n"), MountTable(), KeyedLock())


@pytest.mark.parametrize(
    ("error", "evented"),
    [(ProviderError("permission denied"), True), (ProviderUnavailable("vault down"), False)],
)
async def test_owner_fixable_failures_become_events_outages_do_not(
    error: Exception, evented: bool
) -> None:
    journal, provider, events = Journal(), FakeProvider(), RecordedEvents()
    provider.error = error
    with pytest.raises(type(error)):
        await _publish(journal, provider, events)(request())
    message = f"failed to mount spc default/app (provider fake): {error}"
    expected = [("web-0", "GRPCProviderError", message)] if evented else []
    assert events.sent == expected


async def test_missing_class_is_evented_with_upstreams_reason() -> None:
    journal, events = Journal(), RecordedEvents()
    journal.spc_missing = True
    with pytest.raises(Exception, match="not found"):
        await _publish(journal, FakeProvider(), events)(request())
    assert [reason for _, reason, _ in events.sent] == ["SecretProviderClassNotFound"]
    assert TARGET not in journal.mounted
