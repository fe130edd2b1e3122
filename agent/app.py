"""Composition root: build the adapters, start the servers, stop them in order on SIGTERM/SIGINT.

``build_agent`` wires one agent from its settings, one named step per part: the parts all
share, the volume stack, the mode's sources (mode_sources.py), secret sync, the provider
registry (provider_setup.py), publish and unpublish behind the CSI server, rotation and
Kubernetes mode's duties (background.py), then the web server; the ``Agent`` it returns
(lifecycle.py) starts and stops them in order.
"""

from __future__ import annotations

import asyncio

import structlog

from agent import __version__
from agent.aio.backoff import BackoffPolicy
from agent.aio.clock import Clock, SystemClock
from agent.aio.locks import KeyedLock
from agent.aio.loop_monitor import LoopLagMonitor
from agent.background import (
    ClusterDuties,
    SharedParts,
    cluster_duties,
    rotation_scheduler,
    secret_syncer,
)
from agent.config import Settings, socket_path_from_endpoint
from agent.core.mount_table import MountTable
from agent.core.publish import PublishPorts, PublishSettings, PublishVolume
from agent.core.secret_jobs import SecretSyncJobs
from agent.core.unpublish import UnpublishVolume
from agent.csi.server import CsiServer
from agent.errors import AgentError
from agent.fs.mount_syscalls import require_mount_capability
from agent.fs.stack import VolumeStack, build_volume_stack
from agent.lifecycle import Agent
from agent.logs import configure_logging
from agent.metrics import Metrics
from agent.mode_sources import ModeSources, configuration_sources
from agent.platform import NodePlatform
from agent.platform import current as current_platform
from agent.platform.runtime import StopSignals
from agent.platform.runtime import run as run_loop
from agent.ports import PodStatusStore
from agent.ports_volumes import VolumeMounter
from agent.provider_setup import build_providers
from agent.providers.registry import ProviderRegistry
from agent.rotation.scheduler import RotationScheduler
from agent.targets import make_target_rules
from agent.web import WebServer

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
    shared = _shared_parts(settings, clock or SystemClock(), platform or current_platform())
    volumes = _volume_stack(shared)
    sources = configuration_sources(settings, shared.metrics, retry_policy)
    sync = secret_syncer(sources.cluster, shared.table, shared.metrics, volumes.read_files)
    jobs = SecretSyncJobs(sync) if sync is not None else None
    providers = _providers(shared, registry, sources)
    ports = _publish_ports(shared, sources, providers, volumes, jobs)
    rotation = rotation_scheduler(shared, sources, ports, sync)
    publish = _publish(shared, ports, rotation)
    unpublish = _unpublish(shared, volumes.mounter, sources.statuses, jobs)
    csi = _csi_server(shared, publish, unpublish)
    duties = cluster_duties(shared, sources, volumes.mounter, jobs, sync)
    return _assemble(
        shared, sources, volumes, providers, csi, jobs=jobs, rotation=rotation, duties=duties
    )


def _shared_parts(settings: Settings, clock: Clock, platform: NodePlatform) -> SharedParts:
    return SharedParts(
        settings,
        platform,
        clock,
        Metrics(),
        MountTable(),
        KeyedLock(),
        make_target_rules(settings.kubelet_root_dir, windows=platform.windows),
    )


def _volume_stack(shared: SharedParts) -> VolumeStack:
    """How volumes are mounted, written and remembered; tmpfs needs the mount capability
    (checked first, so a missing one fails the start naming it)."""
    settings, platform = shared.settings, shared.platform
    if settings.mount_mode == "tmpfs" and not platform.windows:
        require_mount_capability()
    return build_volume_stack(
        platform,
        shared.targets,
        mount_mode=settings.mount_mode,
        tmpfs_size=settings.tmpfs_size,
        max_total_bytes=settings.payload_limit,
    )


def _providers(
    shared: SharedParts, registry: ProviderRegistry | None, sources: ModeSources
) -> ProviderRegistry:
    """``registry`` (tests) or the flags' one, told where service accounts and node labels
    come from in this mode."""
    providers = registry or build_providers(shared.settings, shared.platform, sources)
    providers.use_service_accounts(sources.service_accounts)
    providers.use_node_labels(sources.node_labels)
    return providers


def _publish_ports(
    shared: SharedParts,
    sources: ModeSources,
    providers: ProviderRegistry,
    volumes: VolumeStack,
    jobs: SecretSyncJobs | None,
) -> PublishPorts:
    return PublishPorts(
        spcs=sources.spcs,
        providers=providers,
        mounter=volumes.mounter,
        writer=volumes.writer,
        statuses=sources.statuses,
        metadata=volumes.metadata,
        observer=shared.metrics,
        events=sources.events,
        secret_sync=jobs,
    )


def _publish(
    shared: SharedParts, ports: PublishPorts, rotation: RotationScheduler | None
) -> PublishVolume:
    settings = shared.settings
    return PublishVolume(
        ports,
        PublishSettings(
            node_name=settings.node_id,
            rotation_enabled=settings.enable_secret_rotation,
            provider_timeout=settings.provider_timeout,
            targets=shared.targets,
        ),
        shared.table,
        shared.locks,
        shared.clock.now,
        republished=rotation.republished if rotation is not None else None,
    )


def _unpublish(
    shared: SharedParts,
    mounter: VolumeMounter,
    statuses: PodStatusStore,
    jobs: SecretSyncJobs | None,
) -> UnpublishVolume:
    return UnpublishVolume(
        mounter,
        statuses,
        shared.metrics,
        shared.table,
        shared.locks,
        node_name=shared.settings.node_id,
        targets=shared.targets,
        secret_sync=jobs,
    )


def _csi_server(
    shared: SharedParts, publish: PublishVolume, unpublish: UnpublishVolume
) -> CsiServer:
    settings, platform = shared.settings, shared.platform
    return CsiServer.for_node(
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


def _assemble(
    shared: SharedParts,
    sources: ModeSources,
    volumes: VolumeStack,
    providers: ProviderRegistry,
    csi: CsiServer,
    *,
    jobs: SecretSyncJobs | None,
    rotation: RotationScheduler | None,
    duties: ClusterDuties,
) -> Agent:
    """The web server (health: the loop and the CSI socket; ready: the socket accepting and,
    in Kubernetes mode, the API's checks), and the Agent owning every part."""
    loop_monitor = LoopLagMonitor()
    web = WebServer(
        metrics_addr=shared.settings.metrics_addr,
        health_addr=shared.settings.health_addr,
        metrics=shared.metrics,
        health_checks={"event-loop": loop_monitor.healthy, "csi-socket": csi.serving},
        ready_checks={"csi-socket": csi.accepting, **duties.ready_checks},
    )
    return Agent(
        shared.settings,
        providers,
        csi,
        web,
        shared.table,
        sources.statuses,
        volumes.metadata,
        volumes.mounter,
        shared.metrics,
        loop_monitor,
        cluster=sources.cluster,
        cleanup=duties.cleanup,
        secret_sync=jobs,
        secret_resync=duties.resync,
        rotation=rotation,
        manifests=sources.manifests,
        status_files=sources.status_files,
        platform=shared.platform,
    )


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
