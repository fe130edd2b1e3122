"""NodeUnpublishVolume: remove contents, unmount, forget the volume and its pod status."""

from __future__ import annotations

import time

import structlog

from agent.aio.locks import KeyedLock
from agent.core.mount_table import MountTable
from agent.core.publish_request import check_target_path
from agent.core.secret_jobs import SecretSyncJobs
from agent.errors import AgentError, InvalidRequest
from agent.model import pod_status_name
from agent.ports import PodStatusStore, PublishObserver, VolumeMounter

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
        secret_sync: SecretSyncJobs | None = None,
    ) -> None:
        self._secret_sync = secret_sync
        self._mounter = mounter
        self._statuses = statuses
        self._observer = observer
        self._table = table
        self._locks = locks

    async def __call__(self, volume_id: str, target_path: str) -> None:
        started = time.perf_counter()
        try:
            if not volume_id:
                raise InvalidRequest("Volume ID missing in request")
            if not target_path:
                raise InvalidRequest("Target path missing in request")
            check_target_path(target_path)
            async with self._locks.hold(target_path):
                await self._mounter.unmount(target_path)
                record = self._table.forget(target_path)
            if record is not None:
                # Kubernetes garbage-collects the status through its owner; standalone has no GC.
                name = pod_status_name(record.pod.name, record.pod.namespace, record.spc_name)
                await self._statuses.delete(record.pod.namespace, name)
                if self._secret_sync is not None:
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
        log.info(
            "node_unpublish.completed",
            target_path=target_path,
            pod=record.pod.name if record else None,
            namespace=record.pod.namespace if record else None,
            spc=record.spc_name if record else None,
            provider=record.provider if record else None,
            outcome="unmounted" if record else "unknown_volume",
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )
