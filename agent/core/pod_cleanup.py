"""Release the volumes of a pod that is gone: deleted, or finished (Succeeded/Failed).

The safety net behind NodeUnpublishVolume (DESIGN "Cleanup"): the pod's volumes leave the
mount table at once, their pod statuses are deleted (or handed to a live volume sharing the
name, as an unpublish does: a pod recreated under its name on this node), and a target that
kubelet has still not unpublished after a grace period is unmounted and removed, so nothing
stays mounted for a pod that no longer exists however the events arrived.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from agent.aio.locks import KeyedLock
from agent.aio.tasks import TaskSet
from agent.core.mount_table import MountTable, status_key
from agent.core.secret_jobs import SecretSyncJobs
from agent.core.volume_statuses import VolumeStatuses
from agent.errors import AgentError
from agent.model import VolumeRecord
from agent.ports import PodStatusStore
from agent.ports_volumes import VolumeMounter

log = structlog.get_logger("agent.cleanup")


class ReleasePodVolumes:
    def __init__(
        self,
        mounter: VolumeMounter,
        statuses: PodStatusStore,
        table: MountTable,
        locks: KeyedLock,
        *,
        node_name: str,
        grace: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        secret_sync: SecretSyncJobs | None = None,
    ) -> None:
        self._secret_sync = secret_sync
        self._mounter = mounter
        self._statuses = VolumeStatuses(statuses, table, node_name)
        self._table = table
        self._locks = locks
        self._grace = grace
        self._sleep = sleep
        self._timers = TaskSet("volume-grace")

    async def __call__(self, pod_uid: str, why: str) -> int:
        """Forget the pod's volumes now, unmount leftovers after the grace period; returns how
        many volumes the pod had."""
        released: list[VolumeRecord] = []
        for record in self._table.of_pod(pod_uid):
            async with self._locks.hold(record.target_path):
                if self._table.get(record.target_path) is not record:
                    continue  # unpublished or republished meanwhile
                self._table.forget(record.target_path)
            released.append(record)
        # Once all are forgotten: a status is never handed to another volume of the same pod.
        for key in dict.fromkeys(status_key(record) for record in released):
            await self._statuses.release(key)
        for record in released:
            if self._secret_sync is not None:
                self._secret_sync.removed(record)
            log.info(
                "pod_cleanup.released",
                pod=record.pod.name,
                namespace=record.pod.namespace,
                spc=record.spc_name,
                target_path=record.target_path,
                why=why,
            )
            self._timers.spawn(self._unmount_later(record), record.target_path)
        return len(released)

    async def _unmount_later(self, record: VolumeRecord) -> None:
        await self._sleep(self._grace)
        target = record.target_path
        async with self._locks.hold(target):
            if self._table.get(target) is not None:
                return  # published again (cannot happen for a gone pod's path, but be sure)
            try:
                mounted = await self._mounter.is_mounted(target)
                await self._mounter.unmount(target)
            except AgentError as err:
                log.error("pod_cleanup.unmount_failed", target_path=target, error=err.message)
                return
        if mounted:
            log.warning(
                "pod_cleanup.unmounted",
                pod=record.pod.name,
                namespace=record.pod.namespace,
                target_path=target,
                note="kubelet did not unpublish within the grace period",
            )

    async def wait(self) -> None:
        """Until every pending grace-period unmount has run (tests, shutdown of a drained node)."""
        await self._timers.wait()

    async def close(self) -> None:
        """Drop pending unmounts; after a restart recovery and the pod informer find them again."""
        await self._timers.close()
