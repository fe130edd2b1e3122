"""Rebuild the mount table after a restart from pod statuses and the metadata beside each volume.

Rotation and cleanup then resume without waiting for kubelet. Tokens are not persisted (they
are secrets); the next republish from kubelet brings fresh ones.
"""

from __future__ import annotations

import structlog

from agent.core.mount_table import MountTable
from agent.core.records import record_from_metadata
from agent.model import VolumeRecord
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
        if await adopt_volume(status.target_path, metadata, table) is None:
            log.warning("recovery.metadata_unusable", target_path=status.target_path)
            continue
        recovered += 1
    return recovered


async def adopt_volume(
    target: str, metadata: VolumeMetadataStore, table: MountTable
) -> VolumeRecord | None:
    """Put a mounted volume back in the table from the metadata kept beside it, if usable."""
    document = await metadata.load(target)
    record = record_from_metadata(document) if document else None
    if record is None or record.target_path != target:
        return None
    table.put(record)
    return record
