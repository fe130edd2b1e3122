"""Publish through volume stacks with blocking forms: the mount a publish still needs, the write
and the metadata save run in ONE worker-thread hop, in the order of the step-by-step path, and
the status is queued after it; a cancellation waits for that hop and undoes only what the call
created."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from agent.errors import FileWriteError, ProviderError
from agent.model import SecretFile
from tests.support.fake_provider import FakeProvider
from tests.unit.test_publish_core import TARGET, Journal, make, make_with_table, request


class FilesOnlyProvider(FakeProvider):
    files_only = True  # as the built-in providers: asked before the mount


class BlockingJournal(Journal):
    """The Journal's ports with blocking forms; each records the thread it ran in."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: set[int] = set()
        self.hop_gate: threading.Event | None = None
        self.hop_started = threading.Event()

    def _did(self, event: str) -> None:
        self.threads.add(threading.get_ident())
        self.events.append(event)

    def mount_blocking(self, target: str) -> None:
        self.hop_started.set()
        if self.hop_gate is not None:
            assert self.hop_gate.wait(10)
        self.mounted.add(target)
        self._did("mount")

    def write_blocking(
        self, target: str, files: Sequence[SecretFile], gid: int | None = None
    ) -> bool:
        self.hop_started.set()
        if self.hop_gate is not None:
            assert self.hop_gate.wait(10)
        self.written.add(target)
        self._did("write")
        return not self.content_current

    def save_blocking(self, target: str, document: Mapping[str, object]) -> None:
        if self.metadata_error is not None:
            raise self.metadata_error
        self._did("metadata")


async def test_one_hop_mounts_writes_and_saves_in_one_worker_thread() -> None:
    journal = BlockingJournal()
    outcome = await make(journal, FilesOnlyProvider())(request())
    assert outcome.action == "mounted"
    assert journal.events == ["mount", "write", "metadata", "status", "ok"]
    assert len(journal.threads) == 1 and threading.get_ident() not in journal.threads


async def test_a_provider_that_may_write_the_target_is_asked_after_the_mount() -> None:
    journal, provider = BlockingJournal(), FakeProvider()
    provider.on_mount = lambda _request: journal.events.append("fetch")
    await make(journal, provider)(request())
    assert journal.events == ["mount", "fetch", "write", "metadata", "status", "ok"]


async def test_a_failed_fetch_before_the_mount_leaves_nothing_to_undo() -> None:
    journal, provider = BlockingJournal(), FilesOnlyProvider()
    provider.error = ProviderError("denied")
    with pytest.raises(ProviderError):
        await make(journal, provider)(request())
    assert journal.events == ["failed:GRPCProviderError"] and not journal.mounted


async def test_a_failed_save_still_tries_the_status_then_undoes_both() -> None:
    journal = BlockingJournal()
    journal.metadata_error = FileWriteError("disk full")
    publish, table = make_with_table(journal, FilesOnlyProvider())
    with pytest.raises(FileWriteError):
        await publish(request())
    assert journal.events[:3] == ["mount", "write", "status"]
    assert {"unmount", "status.delete"} <= set(journal.events)
    assert table.get(TARGET) is None and TARGET not in journal.mounted


async def test_cancelled_during_the_hop_waits_for_it_and_unmounts_what_it_mounted() -> None:
    await cancel_in_the_hop_after_its_mount(BlockingJournal(), FilesOnlyProvider())


async def cancel_in_the_hop_after_its_mount(
    journal: BlockingJournal, provider: FakeProvider
) -> None:
    """Cancel the publish while its hop is held after the mount: the call must wait for the
    thread, then unmount what it mounted and leave no record."""
    journal.hop_gate = threading.Event()
    publish, table = make_with_table(journal, provider)
    task = asyncio.create_task(publish(request()))
    await asyncio.to_thread(journal.hop_started.wait, 10)
    task.cancel()
    await asyncio.sleep(0.01)
    assert not task.done(), "the publish returned while its thread still worked"
    journal.hop_gate.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert journal.events.index("metadata") < journal.events.index("unmount")
    assert table.get(TARGET) is None and TARGET not in journal.mounted


async def test_cancelled_during_the_hop_never_unmounts_a_volume_it_did_not_mount() -> None:
    """A complete volume without metadata (killed before the save, or upstream's) is refetched
    in place: its hop writes but never mounts, and a cancellation must leave it mounted."""
    journal = BlockingJournal()
    journal.mounted.add(TARGET)
    journal.written.add(TARGET)
    journal.hop_gate = threading.Event()
    publish, _table = make_with_table(journal, FilesOnlyProvider())
    task = asyncio.create_task(publish(request()))
    await asyncio.to_thread(journal.hop_started.wait, 10)
    task.cancel()
    journal.hop_gate.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "mount" not in journal.events and "unmount" not in journal.events
    assert TARGET in journal.mounted


@pytest.mark.parametrize("platform", ["linux-tmpfs", "linux-directory", "windows"])
def test_every_volume_stack_joins_the_one_hop(tmp_path: Path, platform: str) -> None:
    """The agent's real stacks offer every blocking form: a renamed method would silently send
    each publish back to one hop per step (the isinstance checks fall back, nothing fails)."""
    from agent.core.mount_table import MountTable
    from agent.core.publish_check import PublishCheck
    from agent.core.volume_content import VolumeContentStore
    from agent.fs.stack import build_volume_stack
    from agent.platform import emulated_windows, linux
    from agent.standalone.spc_source import DirectorySecretProviderClassSource
    from agent.standalone.status_store import DirectoryPodStatusStore
    from agent.targets import make_target_rules

    windows = platform == "windows"
    root = "C:\\var\\lib\\kubelet" if windows else "/var/lib/kubelet"
    stack = build_volume_stack(
        emulated_windows(str(tmp_path)) if windows else linux(),
        make_target_rules(root, windows=windows),
        mount_mode=platform.removeprefix("linux-") if not windows else "directory",
        tmpfs_size=None,
        max_total_bytes=1 << 20,
    )
    content = VolumeContentStore(
        stack.writer, stack.metadata, DirectoryPodStatusStore(tmp_path), MountTable(), "node-a"
    )
    assert content.joins_mount(stack.mounter) is not None
    spcs = DirectorySecretProviderClassSource(tmp_path)
    assert PublishCheck(stack.mounter, spcs).joined
