"""PublishVolume against in-memory ports: ordering guarantees that are hard to provoke for real."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence

import pytest

from agent.aio.locks import KeyedLock
from agent.core.mount_table import MountTable
from agent.core.publish import PublishPorts, PublishSettings, PublishVolume
from agent.core.secret_jobs import SecretSyncJobs
from agent.errors import FileWriteError, MountError, ProviderError, SecretProviderClassNotFound
from agent.model import (
    PodStatus,
    PublishRequest,
    SecretFile,
    SecretProviderClass,
    VolumeContent,
    VolumeRecord,
    VolumeState,
)
from agent.providers.registry import ProviderRegistry
from tests.support.fake_provider import FakeProvider

TARGET = "/var/lib/kubelet/pods/u/volumes/kubernetes.io~csi/s/mount"
CONTEXT = {
    "secretProviderClass": "app",
    "csi.storage.k8s.io/pod.name": "web-0",
    "csi.storage.k8s.io/pod.namespace": "default",
    "csi.storage.k8s.io/pod.uid": "u",
}


class Journal:
    """Every port appends what it did, so tests can assert on the order of effects."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.mounted: set[str] = set()
        self.written: set[str] = set()
        self.foreign: set[str] = set()  # mounted content the agent's writer did not make
        self.unmount_error: Exception | None = None
        self.unmount_gate: asyncio.Event | None = None
        self.unmount_started = asyncio.Event()
        self.write_gate: asyncio.Event | None = None
        self.write_started = asyncio.Event()
        self.status_gate: asyncio.Event | None = None
        self.metadata_error: Exception | None = None
        self.spc_missing = False
        self.content_current = False  # the writer finds the files already as fetched
        self.synced: list[str] = []  # ports_sync.SecretSync: targets handed over after a write
        self.sync_jobs: SecretSyncJobs | None = None

    async def get(self, namespace: str, name: str) -> SecretProviderClass:
        if self.spc_missing:
            raise SecretProviderClassNotFound(f"secretproviderclass {namespace}/{name} not found")
        return SecretProviderClass(name, namespace, "fake", {"objects": "x"})

    async def is_mounted(self, target: str) -> bool:
        return target in self.mounted

    async def mount(self, target: str) -> None:
        self.mounted.add(target)
        self.events.append("mount")

    async def unmount(self, target: str) -> None:
        self.unmount_started.set()
        if self.unmount_gate is not None:
            await self.unmount_gate.wait()
        if self.unmount_error is not None:
            self.events.append("unmount.failed")
            raise self.unmount_error
        self.mounted.discard(target)
        self.written.discard(target)
        self.events.append("unmount")

    async def inspect(self, target: str) -> VolumeState | None:
        if target not in self.mounted:
            return None
        if target in self.foreign:
            return VolumeState(VolumeContent.FOREIGN, has_metadata=False)
        if target in self.written:
            return VolumeState(VolumeContent.COMPLETE, has_metadata=False)
        return VolumeState(VolumeContent.EMPTY, has_metadata=False)

    async def discover(self) -> list[str]:
        return sorted(self.mounted)

    async def write(
        self, target: str, files: Sequence[SecretFile], *, gid: int | None = None
    ) -> bool:
        self.events.append("write.start")
        self.write_started.set()
        if self.write_gate is not None:
            await self.write_gate.wait()
        self.events.append("write.end")
        self.written.add(target)
        return not self.content_current

    async def save(self, target: str, document: Mapping[str, object]) -> None:
        if self.metadata_error is not None:
            raise self.metadata_error
        self.events.append("metadata")

    async def load(self, target: str) -> dict[str, object] | None:
        return None

    async def upsert(self, status: PodStatus) -> None:
        if self.status_gate is not None:
            await self.status_gate.wait()
        self.events.append("status")

    async def delete(self, namespace: str, name: str) -> None:
        self.events.append("status.delete")

    async def load_all(self) -> list[PodStatus]:
        return []

    def publish_succeeded(self, provider: str, seconds: float) -> None:
        self.events.append("ok")

    def publish_failed(self, provider: str, error_type: str, seconds: float) -> None:
        self.events.append(f"failed:{error_type}")

    def remount_done(self, provider: str, rotated: bool, error_type: str, seconds: float) -> None:
        self.events.append(f"remount:{'rotated' if rotated else 'same'}:{error_type}")

    def unpublish_succeeded(self) -> None: ...

    def unpublish_failed(self) -> None: ...

    async def volume_written(self, record: VolumeRecord, spc: SecretProviderClass) -> None:
        self.synced.append(record.target_path)

    async def volume_removed(self, record: VolumeRecord) -> None: ...


def make(
    journal: Journal, provider: FakeProvider, *, rotation_enabled: bool = False
) -> PublishVolume:
    return make_with_table(journal, provider, rotation_enabled=rotation_enabled)[0]


def request() -> PublishRequest:
    return PublishRequest("v", TARGET, True, True, CONTEXT, {})


async def test_first_publish_order() -> None:
    journal = Journal()
    await make(journal, FakeProvider())(request())
    assert journal.events == ["mount", "write.start", "write.end", "metadata", "status", "ok"]


async def test_failed_first_publish_unmounts_and_deletes_status() -> None:
    journal = Journal()
    provider = FakeProvider()
    provider.error = ProviderError("denied")
    with pytest.raises(ProviderError):
        await make(journal, provider)(request())
    # The status was never written, so it is not touched (it may be another volume's).
    assert journal.events == ["mount", "unmount", "failed:GRPCProviderError"]


@pytest.mark.parametrize("scheduler", [True, False])
async def test_a_republish_only_refreshes_tokens_and_never_fetches(scheduler: bool) -> None:
    """Kubelet's pod-sync cadence must not multiply provider calls: with rotation on and the
    interval long past, a republish still only refreshes the record's tokens and tells the
    scheduler (when there is one), which fetches when the volume is due."""
    journal, provider = Journal(), FakeProvider()
    told: list[VolumeRecord] = []
    now = [1000.0]
    publish, table = make_with_table(
        journal,
        provider,
        clock=lambda: now[0],
        republished=told.append if scheduler else None,
        rotation_enabled=True,
    )
    await publish(request())
    now[0] += 24 * 3600.0
    fresh = {**CONTEXT, "csi.storage.k8s.io/serviceAccount.tokens": '{"a":{"token":"t2"}}'}
    outcome = await publish(PublishRequest("v", TARGET, True, True, fresh, {}))
    assert outcome.action == "already_mounted" and len(provider.requests) == 1
    record = table.get(TARGET)
    assert record is not None and told == ([record] if scheduler else [])
    token = record.pod.token_for("a")
    assert token is not None and token.token == "t2"
    assert record.updated_at == 1000.0  # not fetched, so not due later


def make_with_table(
    journal: Journal,
    provider: FakeProvider,
    *,
    clock: Callable[[], float] = time.time,
    republished: Callable[[VolumeRecord], None] | None = None,
    rotation_enabled: bool = False,
) -> tuple[PublishVolume, MountTable]:
    registry = ProviderRegistry(
        timeout=5,
        version_key=b"k",
        factories={"fake": lambda _c: provider},
        load_entry_points=False,
    )
    ports = PublishPorts(journal, registry, journal, journal, journal, journal, journal)
    ports.secret_sync = journal.sync_jobs = SecretSyncJobs(journal)
    table = MountTable()
    publish = PublishVolume(
        ports,
        PublishSettings(node_name="n", rotation_enabled=rotation_enabled),
        table,
        KeyedLock(),
        clock,
        republished=republished,
    )
    return publish, table


async def test_unknown_mount_is_filled_like_a_first_publish() -> None:
    """A tmpfs left mounted and empty (agent killed mid-publish) must not count as published."""
    journal, provider = Journal(), FakeProvider()
    journal.mounted.add(TARGET)
    outcome = await make(journal, provider)(request())
    assert outcome.action == "mounted" and len(provider.requests) == 1
    assert "mount" not in journal.events and "write.end" in journal.events


async def test_unknown_mount_that_cannot_be_filled_is_unmounted() -> None:
    journal, provider = Journal(), FakeProvider()
    journal.mounted.add(TARGET)
    provider.error = ProviderError("denied")
    with pytest.raises(ProviderError):
        await make(journal, provider)(request())
    assert TARGET not in journal.mounted


async def test_failed_metadata_waits_for_the_status_write_before_undoing() -> None:
    journal = Journal()
    journal.metadata_error = FileWriteError("disk full")
    journal.status_gate = asyncio.Event()
    task = asyncio.create_task(make(journal, FakeProvider())(request()))
    await asyncio.sleep(0.01)
    assert "unmount" not in journal.events
    journal.status_gate.set()
    with pytest.raises(FileWriteError):
        await task
    assert journal.events.index("status") < journal.events.index("status.delete")


async def test_cancel_during_status_write_leaves_no_table_entry() -> None:
    journal = Journal()
    journal.status_gate = asyncio.Event()
    publish, table = make_with_table(journal, FakeProvider())
    task = asyncio.create_task(publish(request()))
    await asyncio.sleep(0.01)
    task.cancel()
    journal.status_gate.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert table.get(TARGET) is None and TARGET not in journal.mounted
    assert journal.events[-1] == "failed:Cancelled"


async def test_provider_cancelling_itself_is_a_provider_error() -> None:
    journal, provider = Journal(), FakeProvider()
    provider.error = asyncio.CancelledError()
    with pytest.raises(ProviderError, match="cancelled its own call"):
        await make(journal, provider)(request())
    assert TARGET not in journal.mounted


async def test_content_someone_else_mounted_is_never_wiped() -> None:
    """E.g. a volume the upstream driver wrote before the switch: no record, no metadata."""
    journal, provider = Journal(), FakeProvider()
    journal.mounted.add(TARGET)
    journal.foreign.add(TARGET)
    journal.spc_missing = True
    outcome = await make(journal, provider)(request())
    assert outcome.action == "already_mounted" and provider.requests == []
    rotating = make(journal, provider, rotation_enabled=True)
    outcome = await rotating(request())
    assert outcome.action == "remount_failed"  # masked, as upstream
    assert TARGET in journal.mounted and "unmount" not in journal.events


async def test_failed_unmount_still_deletes_the_status() -> None:
    journal, provider = Journal(), FakeProvider()
    journal.metadata_error = FileWriteError("disk full")
    journal.unmount_error = MountError("device busy")
    with pytest.raises(FileWriteError):
        await make(journal, provider)(request())
    assert "unmount.failed" in journal.events and "status.delete" in journal.events


async def test_a_second_cancellation_does_not_cut_the_undo_short() -> None:
    """grpclib cancels a handler twice on a deadline; the undo must still finish under the lock,
    or kubelet's retry would write into a volume the undo is about to unmount."""
    journal = Journal()
    journal.write_gate = asyncio.Event()
    journal.unmount_gate = asyncio.Event()
    publish, table = make_with_table(journal, FakeProvider())
    first = asyncio.create_task(publish(request()))
    await journal.write_started.wait()
    first.cancel()
    await journal.unmount_started.wait()
    first.cancel()  # the second cancellation arrives while the undo runs
    retry = asyncio.create_task(publish(request()))
    await asyncio.sleep(0.01)
    assert journal.events.count("mount") == 1, "the retry ran while the undo was unfinished"
    journal.unmount_gate.set()
    journal.write_gate.set()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert (await retry).action == "mounted"
    assert (
        journal.events.index("unmount")
        < len(journal.events) - journal.events[::-1].index("mount") - 1
    )
    assert TARGET in journal.mounted and table.get(TARGET) is not None


async def test_complete_volume_without_metadata_is_refetched_and_recorded() -> None:
    """Killed between the write and the metadata save (or written by the upstream driver)."""
    journal, provider = Journal(), FakeProvider()
    journal.mounted.add(TARGET)
    journal.written.add(TARGET)
    publish, table = make_with_table(journal, provider)
    outcome = await publish(request())
    assert outcome.action == "adopted" and len(provider.requests) == 1
    assert "mount" not in journal.events and {"metadata", "status"} <= set(journal.events)
    assert table.get(TARGET) is not None
    assert (await publish(request())).action == "already_mounted"


async def test_an_adopted_volume_is_synced_even_when_its_content_was_current() -> None:
    """Killed after the write, before the record: the refetch finds the same files, but the
    volume's Secrets were never synced (sync follows the record)."""
    journal, provider = Journal(), FakeProvider()
    journal.mounted.add(TARGET)
    journal.written.add(TARGET)
    journal.content_current = True
    publish, _ = make_with_table(journal, provider)
    assert (await publish(request())).action == "adopted"
    assert journal.sync_jobs is not None
    await journal.sync_jobs.wait()
    assert journal.synced == [TARGET]


async def test_complete_volume_without_metadata_is_kept_when_the_refetch_fails() -> None:
    journal, provider = Journal(), FakeProvider()
    journal.mounted.add(TARGET)
    journal.written.add(TARGET)
    provider.error = ProviderError("store down")
    publish, table = make_with_table(journal, provider)
    outcome = await publish(request())
    assert outcome.action == "remount_failed"  # masked: the content is whole
    assert journal.events[-1] == "remount:same:GRPCProviderError"
    journal.spc_missing = True  # a class deleted meanwhile is masked too
    outcome = await publish(request())
    assert (outcome.action, outcome.error_type) == ("remount_failed", "SecretProviderClassNotFound")
    assert TARGET in journal.mounted and "unmount" not in journal.events
    assert table.get(TARGET) is None  # still unrecorded: the next republish tries again


OTHER = TARGET.replace("/s/mount", "/t/mount")


async def test_a_second_volume_of_the_same_class_never_touches_the_first_ones_status() -> None:
    journal, provider = Journal(), FakeProvider()
    publish, table = make_with_table(journal, provider)
    await publish(request())
    assert journal.events.count("status") == 1
    provider.error = ProviderError("denied")
    with pytest.raises(ProviderError):
        await publish(PublishRequest("v2", OTHER, True, True, CONTEXT, {}))
    assert journal.events.count("status") == 1 and "status.delete" not in journal.events
    provider.error = None
    await publish(PublishRequest("v2", OTHER, True, True, CONTEXT, {}))
    assert journal.events.count("status") == 1, "the second volume overwrote the first's status"
    assert table.get(OTHER) is not None and table.get(TARGET) is not None
