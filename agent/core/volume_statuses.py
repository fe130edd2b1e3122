"""One pod status per (pod, SecretProviderClass), never written over or deleted for another volume.

Upstream names the status ``<pod>-<namespace>-<class>`` (upstream §6), so a pod with two volumes
of one class has one status for both. It describes the *owner*: the earliest recorded live volume
of that name (``MountTable.status_owner``). A later volume never overwrites it, a failing one
never deletes it, and when the owner goes the status is handed to the next live volume, or
deleted when none is left.
"""

from __future__ import annotations

import structlog

from agent.core.mount_table import MountTable, StatusKey, status_key
from agent.core.records import status_of
from agent.model import VolumeRecord
from agent.ports import PodStatusStore

log = structlog.get_logger("agent.statuses")


class VolumeStatuses:
    def __init__(self, store: PodStatusStore, table: MountTable, node_name: str) -> None:
        self._store = store
        self._table = table
        self._node_name = node_name

    def may_write(self, record: VolumeRecord) -> bool:
        """Whether ``record`` owns its status (or nobody does yet)."""
        owner = self._table.status_owner(status_key(record))
        return owner is None or owner.target_path == record.target_path

    async def write(self, record: VolumeRecord) -> None:
        """Hand ``record``'s status to the store, which writes it behind the caller."""
        await self._store.upsert(status_of(record, self._node_name))

    async def release(self, key: StatusKey) -> None:
        """After a volume with status ``key`` left the table: hand the status to the next live
        volume that shares it, or delete it."""
        owner = self._table.status_owner(key)
        if owner is not None:
            log.info("pod_status.handed_over", status=key[1], target_path=owner.target_path)
            await self.write(owner)
            return
        await self._store.delete(*key)
