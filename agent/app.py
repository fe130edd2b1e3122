"""Composition root: build the adapters, start the servers, stop them in order on SIGTERM/SIGINT.

``build_agent`` wires one agent from its settings: the mode's sources (mode_sources.py), the
provider registry (provider_setup.py), the volume stack, publish and unpublish, rotation and
secret sync; the ``Agent`` it returns (lifecycle.py) starts and stops them in order.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import structlog

from agent import __version__
from agent.aio.backoff import BackoffPolicy
from agent.aio.clock import Clock, SystemClock
from agent.aio.locks import KeyedLock
from agent.aio.loop_monitor import LoopLagMonitor
from agent.config import Settings, socket_path_from_endpoint
from agent.core.mount_table import MountTable
from agent.core.pod_cleanup import ReleasePodVolumes
from agent.core.publish import PublishPorts, PublishSettings, PublishVolume
from agent.core.secret_jobs import SecretSyncJobs
from agent.core.unpublish import UnpublishVolume
from agent.csi.server import CsiServer
from agent.errors import AgentError
from agent.fs.mount_syscalls import require_mount_capability
from agent.fs.stack import build_volume_stack
from agent.lifecycle import Agent
from agent.logs import configure_logging
from agent.metrics import Metrics
from agent.mode_sources import ModeSources, configuration_sources
from agent.platform import NodePlatform
from agent.platform import current as current_platform
from agent.platform.runtime import StopSignals
from agent.platform.runtime import run as run_loop
from agent.ports_sync import SecretSync
from agent.ports_volumes import VolumeFileReader
from agent.provider_setup import build_providers
from agent.providers.registry import ProviderRegistry
from agent.rotation.policy import RotationSettings
from agent.rotation.scheduler import RotationPorts, RotationScheduler
from agent.targets import make_target_rules
from agent.web import Check, WebServer

if TYPE_CHECKING:
    from agent.k8s.adapter import KubernetesAdapter
    from agent.sync.syncer import SecretSyncer

log = structlog.get_logger("agent.app")


def build_agent(
    settings: Settings,
    registry: ProviderRegistry | None = None,
    *,
    retry_policy: BackoffPolicy | None = None,
    clock: Clock | None = None,
    platform: NodePlatform | None = None,
) -> Agent:
    """``retry_policy`` paces the Kubernetes adapter's retries (tests shorten it); ``clock``
    is what publish and rotation read the time from (tests move a manual one); ``platform``
    is the node's OS (default: this machine's; tests pass ``emulated_windows``)."""
    clock = clock or SystemClock()
    platform = platform or current_platform()
    metrics = Metrics()
    table, locks = MountTable(), KeyedLock()
    targets = make_target_rules(settings.kubelet_root_dir, windows=platform.windows)
    if settings.mount_mode == "tmpfs" and not platform.windows:
        require_mount_capability()
    volumes = build_volume_stack(
        platform,
        targets,
        mount_mode=settings.mount_mode,
        tmpfs_size=settings.tmpfs_size,
        max_total_bytes=settings.payload_limit,
    )
    mounter, metadata = volumes.mounter, volumes.metadata
    sources = configuration_sources(settings, metrics, retry_policy)
    sync = _secret_sync(sources.cluster, table, metrics, volumes.read_files)
    jobs = SecretSyncJobs(sync) if sync is not None else None
    providers = registry or build_providers(settings, platform, sources)
    providers.use_service_accounts(sources.service_accounts)
    providers.use_node_labels(sources.node_labels)
    ports = PublishPorts(
        spcs=sources.spcs,
        providers=providers,
        mounter=mounter,
        writer=volumes.writer,
        statuses=sources.statuses,
        metadata=metadata,
        observer=metrics,
        events=sources.events,
        secret_sync=jobs,
    )
    rotation = _rotation(
        settings, sources, ports, sync, metrics=metrics, table=table, locks=locks, clock=clock
    )
    publish = PublishVolume(
        ports,
        PublishSettings(
            node_name=settings.node_id,
            rotation_enabled=settings.enable_secret_rotation,
            provider_timeout=settings.provider_timeout,
            targets=targets,
        ),
        table,
        locks,
        clock.now,
        republished=rotation.republished if rotation is not None else None,
    )
    unpublish = UnpublishVolume(
        mounter,
        sources.statuses,
        metrics,
        table,
        locks,
        node_name=settings.node_id,
        targets=targets,
        secret_sync=jobs,
    )
    csi = CsiServer.for_node(
        driver_name=settings.driver_name,
        version=__version__,
        node_id=settings.node_id,
        publish=publish,
        unpublish=unpublish,
        # An emulated Windows node still binds this machine's kind of socket path.
        socket_path=socket_path_from_endpoint(
            settings.endpoint, windows=platform.windows and not platform.emulated
        ),
        trace_requests=settings.verbosity >= 1,
        sockets=platform.sockets,
    )
    cleanup = None
    ready_checks: dict[str, Check] = {"csi-socket": csi.accepting}
    resync = None
    if sources.cluster is not None:
        grace = settings.pod_cleanup_grace_period
        cleanup = ReleasePodVolumes(
            mounter,
            sources.statuses,
            table,
            locks,
            node_name=settings.node_id,
            grace=grace,
            secret_sync=jobs,
        )
        pods = sources.cluster.watch_pods(table, cleanup)
        ready_checks.update(sources.cluster.ready_checks())
        if sync is not None:
            from agent.sync.resync import SecretResync

            sync.pods = pods
            interval = settings.secret_resync_interval
            classes = sources.cluster.spcs.background  # a pass never delays a publish
            resync = SecretResync(table, classes, sync, interval=interval, clock=clock)
            sources.cluster.spcs.on_secret_objects_changed(resync.class_changed)

    loop_monitor = LoopLagMonitor()
    web = WebServer(
        metrics_addr=settings.metrics_addr,
        health_addr=settings.health_addr,
        metrics=metrics,
        health_checks={"event-loop": loop_monitor.healthy, "csi-socket": csi.serving},
        ready_checks=ready_checks,
    )
    return Agent(
        settings,
        providers,
        csi,
        web,
        table,
        sources.statuses,
        metadata,
        mounter,
        metrics,
        loop_monitor,
        cluster=sources.cluster,
        cleanup=cleanup,
        secret_sync=jobs,
        secret_resync=resync,
        rotation=rotation,
        manifests=sources.manifests,
        status_files=sources.status_files,
        platform=platform,
    )


def _secret_sync(
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


def _rotation(
    settings: Settings,
    sources: ModeSources,
    ports: PublishPorts,
    sync: SecretSync | None,
    *,
    metrics: Metrics,
    table: MountTable,
    locks: KeyedLock,
    clock: Clock,
) -> RotationScheduler | None:
    """The scheduler with ``--enable-secret-rotation``, told of class and pod edits."""
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
            observer=metrics,
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
        table,
        locks,
        clock=clock,
    )
    if sources.cluster is not None:
        sources.cluster.listen(rotation)
    if sources.manifests is not None:
        sources.manifests.listen(rotation)
    return rotation


async def serve(
    settings: Settings,
    registry: ProviderRegistry | None = None,
    platform: NodePlatform | None = None,
) -> None:
    platform = platform or current_platform()
    agent = build_agent(settings, registry, platform=platform)
    stop = asyncio.Event()
    # Windows rules take the portable signal path (what a Windows loop needs) even when
    # emulated on Linux, so the emulation exercises it.
    signals = StopSignals(asyncio.get_running_loop(), stop.set, native=not platform.windows)
    try:
        await agent.start()
        await stop.wait()
        log.info("agent.stopping")
    finally:
        try:
            await agent.stop()
        finally:
            signals.close()


def run(
    settings: Settings,
    registry: ProviderRegistry | None = None,
    platform: NodePlatform | None = None,
) -> int:
    configure_logging(
        json=settings.log_format_json,
        verbosity=settings.verbosity,
        debug_loggers=settings.debug_loggers,
    )
    try:
        run_loop(serve(settings, registry, platform), settings.event_loop)
    except AgentError as err:
        log.error("agent.failed", reason=err.reason, error=err.message)
        return 1
    return 0
