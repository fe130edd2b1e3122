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
from agent.model import PodIdentity, PodStatus, VolumeRecord
from agent.providers.registry import ProviderRegistry
from tests.support.events import RecordedEvents
from tests.support.fake_provider import FakeProvider
from tests.unit.test_publish_core import TARGET, Journal, request


def _record(target: str, uid: str, pod: str = "web-0", spc: str = "app") -> VolumeRecord:
    return VolumeRecord(target, "v", PodIdentity("ns", pod, uid), spc, "fake")


class StatusJournal(Journal):
    """Also keeps which statuses were written."""

    def __init__(self) -> None:
        super().__init__()
        self.statuses: list[PodStatus] = []

    async def upsert(self, status: PodStatus) -> None:
        self.statuses.append(status)
        await super().upsert(status)


async def test_release_forgets_deletes_status_and_unmounts_after_the_grace() -> None:
    journal, table = Journal(), MountTable()
    journal.mounted |= {"/a", "/b", "/c"}
    for target, uid, spc in (("/a", "gone", "app"), ("/b", "gone", "db"), ("/c", "alive", "app")):
        table.put(_record(target, uid, pod=f"pod-{uid}", spc=spc))
    grace = asyncio.Event()

    async def sleep(_seconds: float) -> None:
        await grace.wait()

    release = ReleasePodVolumes(
        journal, journal, table, KeyedLock(), node_name="n", grace=60, sleep=sleep
    )
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
    release = ReleasePodVolumes(journal, journal, table, KeyedLock(), node_name="n", grace=3600)
    assert await release("gone", "deleted") == 1
    assert await release("gone", "deleted") == 0  # a second event finds nothing
    await release.close()  # the pending unmount is dropped, not left running
    assert journal.events.count("unmount") == 0


async def test_a_pod_recreated_on_the_node_gets_the_status_the_old_one_leaves() -> None:
    """web-0 deleted and created again on this node before kubelet unpublished the old one:
    both volumes share the status name, which the new one takes over (as after an unpublish)
    instead of the status being deleted from under it; the old pod's second volume of the
    class never gets it on the way."""
    journal, table = StatusJournal(), MountTable()
    table.put(_record("/old-1", "old-uid"))
    table.put(_record("/old-2", "old-uid"))
    table.put(_record("/new", "new-uid"))
    release = ReleasePodVolumes(journal, journal, table, KeyedLock(), node_name="n", grace=3600)
    assert await release("old-uid", "replaced by a pod of the same name") == 2
    assert journal.events.count("status.delete") == 0
    assert [(s.pod_uid, s.target_path) for s in journal.statuses] == [("new-uid", "/new")]
    await release.close()


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
