"""NodeUnpublishVolume: remove the agent's files, unmount, forget the volume, release its status.

Only kubelet target paths below the kubelet root are touched, and only what the agent wrote is
deleted (the mounter refuses anything else). A volume the table does not know (a publish or an
unpublish killed part way) has no status: recovery deleted it at the restart.
"""

from __future__ import annotations

import time

import structlog

from agent.aio.locks import KeyedLock
from agent.core.mount_table import MountTable, status_key
from agent.core.secret_jobs import SecretSyncJobs
from agent.core.volume_statuses import VolumeStatuses
from agent.errors import AgentError, InvalidRequest
from agent.ports import PodStatusStore, PublishObserver
from agent.ports_volumes import VolumeMounter
from agent.targets import TargetRules

log = structlog.get_logger("agent.unpublish")


class UnpublishVolume:
    def __init__(
        self,
        mounter: VolumeMounter,
        statuses: PodStatusStore,
        observer: PublishObserver,
        table: MountTable,
        locks: KeyedLock,
        *,
        node_name: str,
        targets: TargetRules,
        secret_sync: SecretSyncJobs | None = None,
    ) -> None:
        self._secret_sync = secret_sync
        self._mounter = mounter
        self._statuses = VolumeStatuses(statuses, table, node_name)
        self._observer = observer
        self._table = table
        self._locks = locks
        self._targets = targets

    async def __call__(self, volume_id: str, target_path: str) -> None:
        started = time.perf_counter()
        try:
            if not volume_id:
                raise InvalidRequest("Volume ID missing in request")
            if not target_path:
                raise InvalidRequest("Target path missing in request")
            target_path = self._targets.parse(target_path).path  # canonical (Windows: case)
            async with self._locks.hold(target_path):
                await self._mounter.unmount(target_path)
                record = self._table.forget(target_path)
                # Kubernetes garbage-collects the status through its owner; standalone has no
                # GC, and a status must never outlive its volume on this node.
                if record is not None:
                    await self._statuses.release(status_key(record))
            if record is not None and self._secret_sync is not None:
                self._secret_sync.removed(record)
        except AgentError as err:
            self._observer.unpublish_failed()
            log.warning(
                "node_unpublish.failed",
                target_path=target_path,
                reason=err.reason,
                error=err.message,
            )
            raise
        self._observer.unpublish_succeeded()
        # A volume the agent never knew has no pod or class: leave the keys out rather than
        # print pod=None spc=None ... in kubectl logs.
        volume = (
            {
                "pod": record.pod.name,
                "namespace": record.pod.namespace,
                "spc": record.spc_name,
                "provider": record.provider,
            }
            if record
            else {}
        )
        log.info(
            "node_unpublish.completed",
            target_path=target_path,
            **volume,
            outcome="unmounted" if record else "unknown_volume",
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )
