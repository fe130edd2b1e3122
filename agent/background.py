"""The agent's work beside kubelet's calls, built for ``app.build_agent``: the rotation
scheduler, secret sync (Kubernetes mode) with its periodic re-sync, and the release of deleted
pods' volumes; and ``SharedParts``, what these and the CSI path are all built on.

Kubernetes mode's sync modules are imported only when that mode builds them, so standalone
mode never loads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agent.aio.clock import Clock
from agent.aio.locks import KeyedLock
from agent.config import Settings
from agent.core.mount_table import MountTable
from agent.core.pod_cleanup import ReleasePodVolumes
from agent.core.publish import PublishPorts
from agent.core.secret_jobs import SecretSyncJobs
from agent.metrics import Metrics
from agent.mode_sources import ModeSources
from agent.platform import NodePlatform
from agent.ports_sync import SecretSync
from agent.ports_volumes import VolumeFileReader, VolumeMounter
from agent.rotation.policy import RotationSettings
from agent.rotation.scheduler import RotationPorts, RotationScheduler
from agent.targets import TargetRules
from agent.web import Check

if TYPE_CHECKING:
    from agent.k8s.adapter import KubernetesAdapter
    from agent.sync.resync import SecretResync
    from agent.sync.syncer import SecretSyncer


@dataclass(frozen=True, slots=True)
class SharedParts:
    """What every part of one agent is built on: its settings, the node's OS, the clock
    publish and rotation read, the metrics, the mount table with its per-target locks, and
    the rules for kubelet's target paths."""

    settings: Settings
    platform: NodePlatform
    clock: Clock
    metrics: Metrics
    table: MountTable
    locks: KeyedLock
    targets: TargetRules


@dataclass(frozen=True, slots=True)
class ClusterDuties:
    """Kubernetes mode's work beside the CSI calls (none in standalone mode): the release of
    deleted pods' volumes, the API's readiness checks and the periodic secret re-sync."""

    cleanup: ReleasePodVolumes | None = None
    ready_checks: Mapping[str, Check] = field(default_factory=dict)
    resync: SecretResync | None = None


def secret_syncer(
    cluster: KubernetesAdapter | None,
    table: MountTable,
    metrics: Metrics,
    read_files: VolumeFileReader,
) -> SecretSyncer | None:
    """Kubernetes mode syncs secretObjects whenever a class has them, as upstream does (no
    flag; RBAC decides: without Secret access each attempt is a Warning event saying which
    chart setting grants it). Standalone mode has no Secrets to sync to."""
    if cluster is None:
        return None
    from agent.sync.syncer import SecretSyncer

    return SecretSyncer(
        cluster.secret_store,
        table,
        cluster.secret_consumers,
        cluster.spcs.background,
        read_files,
        events=cluster.events,
        observer=metrics,
    )


def rotation_scheduler(
    shared: SharedParts, sources: ModeSources, ports: PublishPorts, sync: SecretSync | None
) -> RotationScheduler | None:
    """The scheduler with ``--enable-secret-rotation``, told of class and pod edits."""
    settings = shared.settings
    if not settings.enable_secret_rotation:
        return None
    # Rotation is background work: a class the cache lacks is read on the background lane.
    spcs = sources.cluster.spcs.background if sources.cluster is not None else ports.spcs
    rotation = RotationScheduler(
        RotationPorts(
            spcs=spcs,
            providers=ports.providers,
            writer=ports.writer,
            metadata=ports.metadata,
            statuses=ports.statuses,
            observer=shared.metrics,
            sync=sync,
            events=sources.events,
            minter=sources.minter,
        ),
        RotationSettings(
            node_name=settings.node_id,
            interval=settings.rotation_poll_interval,
            min_interval=settings.rotation_min_poll_interval,
            concurrency=settings.rotation_concurrency,
            provider_timeout=settings.provider_timeout,
        ),
        shared.table,
        shared.locks,
        clock=shared.clock,
    )
    if sources.cluster is not None:
        sources.cluster.listen(rotation)
    if sources.manifests is not None:
        sources.manifests.listen(rotation)
    return rotation


def cluster_duties(
    shared: SharedParts,
    sources: ModeSources,
    mounter: VolumeMounter,
    jobs: SecretSyncJobs | None,
    sync: SecretSyncer | None,
) -> ClusterDuties:
    """Kubernetes mode's: the pod informer releasing deleted pods' volumes, its readiness
    checks, and with secret sync the re-sync, told of classes whose secretObjects change."""
    cluster = sources.cluster
    if cluster is None:
        return ClusterDuties()
    cleanup = ReleasePodVolumes(
        mounter,
        sources.statuses,
        shared.table,
        shared.locks,
        node_name=shared.settings.node_id,
        grace=shared.settings.pod_cleanup_grace_period,
        secret_sync=jobs,
    )
    pods = cluster.watch_pods(shared.table, cleanup)
    ready_checks = cluster.ready_checks()
    resync = None
    if sync is not None:
        from agent.sync.resync import SecretResync

        sync.pods = pods
        interval = shared.settings.secret_resync_interval
        classes = cluster.spcs.background  # a pass never delays a publish
        resync = SecretResync(shared.table, classes, sync, interval=interval, clock=shared.clock)
        cluster.spcs.on_secret_objects_changed(resync.class_changed)
    return ClusterDuties(cleanup, ready_checks, resync)
