"""Rebuild the mount table after a restart, and make the pod statuses agree with it.

The source of truth is the node itself: every ``<kubelet root>/pods/*/volumes/kubernetes.io~csi/
*/mount`` that holds a volume, and the metadata the agent saves beside each one once its content
is complete. Statuses are derived from that, never the other way round, so a lost, stale or
shared status cannot hide a volume:

- a volume with usable metadata is adopted (rotation and cleanup resume without kubelet), once
  the mounter's inspection, the one a publish makes, accepts it: a target it refuses (in tmpfs
  mode another file system mounted there, such as a bind mount of a node directory holding a
  copied or forged volume, metadata and all) is logged with the rule and left as it is, never
  read, written or deleted; its status goes with the stale ones below, kubelet's republish is
  refused with the same rule, and its unpublish detaches it without deleting anything in it;
- a volume without it (killed before its metadata was saved, or written by the upstream driver)
  is logged; kubelet's retry of the publish completes and records it, or its unpublish removes
  it;
- a status whose volume is adopted is rewritten if it drifted (a crash between the two saves);
- every other status is deleted: its volume is gone (a crash during unpublish) or has no
  metadata yet (a crash between the two saves of a first publish), and the publish that
  records the volume writes its status again. So an unpublish never has to look statuses up;
- an adopted volume without a status gets one (one per pod and class, see ``volume_statuses``).

Tokens are not persisted (they are secrets); the next republish from kubelet brings fresh ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog

from agent.core.mount_table import MountTable, StatusKey
from agent.core.records import record_from_metadata, status_of
from agent.core.volume_statuses import VolumeStatuses
from agent.errors import InvalidRequest
from agent.model import PodStatus, VolumeRecord
from agent.ports import PodStatusStore
from agent.ports_volumes import VolumeMetadataStore, VolumeMounter

log = structlog.get_logger("agent.recovery")


@dataclass(slots=True)
class Recovered:
    """What a restart found (counts for the start-up log line)."""

    adopted: int = 0
    unrecorded: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # not the agent's to adopt (the reason logged)
    statuses_written: int = 0
    statuses_deleted: int = 0


async def rebuild_mount_table(
    mounter: VolumeMounter,
    metadata: VolumeMetadataStore,
    store: PodStatusStore,
    table: MountTable,
    node_name: str,
) -> Recovered:
    recovered = Recovered()
    # Statuses first: a store may act on each adoption (the Kubernetes one writes the status of
    # every volume put in the table), and knowing what the server holds keeps that a no-op.
    statuses = await store.load_all()
    for target in await mounter.discover():
        try:
            state = await mounter.inspect(target)
        except InvalidRequest as err:
            log.warning("recovery.volume_refused", target_path=target, error=err.message)
            recovered.refused.append(target)
            continue
        if state is None:
            continue  # gone, or emptied, since the scan
        if not state.has_metadata or await adopt_volume(target, metadata, table) is None:
            log.warning("recovery.volume_without_metadata", target_path=target)
            recovered.unrecorded.append(target)
        else:
            recovered.adopted += 1
    await _reconcile_statuses(store, statuses, table, node_name, recovered)
    return recovered


async def _reconcile_statuses(
    store: PodStatusStore,
    loaded: list[PodStatus],
    table: MountTable,
    node_name: str,
    recovered: Recovered,
) -> None:
    statuses = VolumeStatuses(store, table, node_name)
    owners = table.status_owners()
    seen: set[StatusKey] = set()
    for status in loaded:
        key = (status.namespace, status.name)
        seen.add(key)
        owner = owners.get(key)
        if owner is not None:
            if status != status_of(owner, node_name):
                await statuses.write(owner)
                recovered.statuses_written += 1
        else:
            log.info(
                "recovery.stale_status_deleted", status=status.name, target_path=status.target_path
            )
            await store.delete(*key)
            recovered.statuses_deleted += 1
    for key, owner in owners.items():
        if key not in seen:
            await statuses.write(owner)
            recovered.statuses_written += 1


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
