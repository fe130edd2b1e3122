"""The re-sync loop: a pass at start, a full pass on trigger, a class's volumes on its change,
a failure between passes (a volume's sync, a removed volume's release) retried after the
backoff's first delay, a volume whose status was written synced at once, and a bug in one
pass never ends the loop (no waiting for intervals: a
1-hour interval, and a manual clock)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from agent.aio.backoff import BackoffPolicy
from agent.core.mount_table import MountTable
from agent.errors import SecretProviderClassNotFound
from agent.model import PodIdentity, SecretProviderClass, VolumeRecord
from agent.sync.passes import SyncOutcome
from agent.sync.resync import SecretResync
from tests.support.clock import ManualClock


class Classes:
    async def get(self, namespace: str, name: str) -> SecretProviderClass:
        if name == "gone":
            raise SecretProviderClassNotFound("gone")
        return SecretProviderClass(name, namespace, "fake", {"a": "b"}, ({"secretName": "x"},))


class Syncer:
    def __init__(self) -> None:
        self.failing: set[str] = set()
        self.calls: list[tuple[str, tuple[object, ...]]] = []
        self.explode = 0
        self.called = asyncio.Event()
        self.changed: list[tuple[str, str]] = []
        self.left_over = 0  # removed volumes whose release failed
        self.retried_removed = 0

    @property
    def retrying(self) -> bool:
        return bool(self.failing) or self.left_over > 0

    def class_changed(self, namespace: str, name: str) -> None:
        self.changed.append((namespace, name))

    async def retry_removed(self) -> None:
        self.retried_removed += 1
        self.left_over = max(0, self.left_over - 1)
        self.called.set()

    async def sync_volume(self, record: VolumeRecord, spc: SecretProviderClass) -> SyncOutcome:
        self.called.set()
        if self.explode:
            self.explode -= 1
            raise RuntimeError("a bug")
        self.calls.append((record.spc_name, spc.secret_objects))
        return SyncOutcome.SYNCED


def _table() -> MountTable:
    table = MountTable()
    for i, spc in enumerate(("app", "other", "gone")):
        pod = PodIdentity("default", f"p{i}", f"uid-{i}")
        table.put(VolumeRecord(f"/t/{i}", f"v{i}", pod, spc, "fake"))
    return table


async def _next_calls(syncer: Syncer, count: int) -> list[tuple[str, tuple[object, ...]]]:
    async with asyncio.timeout(5):
        while len(syncer.calls) < count:
            syncer.called.clear()
            await syncer.called.wait()
    taken, syncer.calls = syncer.calls[:count], syncer.calls[count:]
    return taken


async def test_start_trigger_class_change_and_a_failing_pass() -> None:
    syncer = Syncer()
    retry = BackoffPolicy(initial=0.01, maximum=0.02)
    resync = SecretResync(_table(), Classes(), syncer, interval=3600, retry=retry)  # type: ignore[arg-type]
    loop = asyncio.create_task(resync.run())
    try:
        start = await _next_calls(syncer, 3)
        assert [name for name, _ in start] == ["app", "other", "gone"]
        assert start[2][1] == ()  # a deleted class names nothing: its Secrets are let go
        resync.class_changed("default", "other")
        assert syncer.changed == [("default", "other")]  # told at once, before the pass
        assert [name for name, _ in await _next_calls(syncer, 1)] == ["other"]
        syncer.explode = 1
        resync.trigger()
        # The bug ends that pass; a full pass follows after the retry delay, not the hour.
        assert [name for name, _ in await _next_calls(syncer, 3)] == ["app", "other", "gone"]
        assert not loop.done()
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0)


async def test_failures_and_ready_volumes_between_passes_never_wait_for_the_interval() -> None:
    syncer, clock = Syncer(), ManualClock()
    retry = BackoffPolicy(initial=5.0, maximum=3600, jitter=0.0)
    resync = SecretResync(_table(), Classes(), syncer, interval=3600, retry=retry, clock=clock)  # type: ignore[arg-type]
    loop = asyncio.create_task(resync.run())
    try:
        await _next_calls(syncer, 3)  # the pass at start
        # A sync outside a pass failed: the retry is armed for the first delay, no pass yet.
        syncer.failing.add("/t/1")
        resync.retry_wanted()
        await _until(lambda: resync.retry_at is not None)
        assert resync.retry_at == clock.now() + 5.0 and not syncer.calls
        clock.advance(5.0)
        assert [name for name, _ in await _next_calls(syncer, 1)] == ["other"]
        # A volume whose status was written is synced at once, alone; time stands still.
        syncer.failing.clear()
        resync.volume_ready("/t/0")
        assert [name for name, _ in await _next_calls(syncer, 1)] == ["app"]
        await _until(lambda: resync.retry_at is None)
        assert resync.full_passes == 1 and resync.passes == 3
        assert syncer.retried_removed == 2  # by the pass at start and by the retry
        # A removed volume's release failed: tried again after the first delay, alone.
        syncer.left_over = 1
        resync.retry_wanted()
        await _until(lambda: resync.retry_at is not None)
        assert resync.retry_at == clock.now() + 5.0
        clock.advance(5.0)
        await _until(lambda: syncer.retried_removed == 3)
        await _until(lambda: resync.retry_at is None)
        assert not syncer.calls and resync.full_passes == 1
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
