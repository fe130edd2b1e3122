"""Rebuild the mount table after a restart from pod statuses and the metadata beside each volume.

Rotation and cleanup then resume without waiting for kubelet. Tokens are not persisted (they
are secrets); the next republish from kubelet brings fresh ones.
"""

from __future__ import annotations

import structlog

from agent.core.mount_table import MountTable
from agent.core.records import record_from_metadata
from agent.ports import PodStatusStore, VolumeMetadataStore, VolumeMounter

log = structlog.get_logger("agent.recovery")


async def rebuild_mount_table(
    statuses: PodStatusStore,
    metadata: VolumeMetadataStore,
    mounter: VolumeMounter,
    table: MountTable,
) -> int:
    recovered = 0
    for status in await statuses.load_all():
        if not status.mounted or not status.target_path:
            continue
        if not await mounter.is_mounted(status.target_path):
            continue
        document = await metadata.load(status.target_path)
        record = record_from_metadata(document) if document else None
        if record is None or record.target_path != status.target_path:
            log.warning("recovery.metadata_unusable", target_path=status.target_path)
            continue
        table.put(record)
        recovered += 1
    return recovered
