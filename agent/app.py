"""Composition root: build the adapters, start the servers, stop them in order on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sys
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from agent import __version__
from agent.aio.locks import KeyedLock
from agent.aio.loop_monitor import LoopLagMonitor
from agent.config import Settings
from agent.core.mount_table import MountTable
from agent.core.publish import PublishPorts, PublishSettings, PublishVolume
from agent.core.recovery import rebuild_mount_table
from agent.core.unpublish import UnpublishVolume
from agent.csi.server import CsiServer
from agent.errors import AgentError, ConfigError
from agent.fs.atomic_writer import AsyncPayloadWriter
from agent.fs.capacity import VolumeCapacity
from agent.fs.confined import KubeletVolumes
from agent.fs.metadata import JsonVolumeMetadata
from agent.fs.mounter import make_mounter
from agent.logs import configure_logging
from agent.metrics import Metrics
from agent.ports import (
    PodStatusStore,
    SecretProviderClassSource,
    ServiceAccountSource,
    VolumeMounter,
)
from agent.providers.registry import ProviderRegistry
from agent.targets import TargetRules
from agent.web import WebServer

log = structlog.get_logger("agent.app")


@dataclass(slots=True)
class Agent:
    """Everything one running agent owns; ``start``/``stop`` are ordered and idempotent."""

    settings: Settings
    providers: ProviderRegistry
    csi: CsiServer
    web: WebServer
    table: MountTable
    statuses: PodStatusStore
    metadata: JsonVolumeMetadata
    mounter: VolumeMounter
    metrics: Metrics = field(repr=False)
    loop_monitor: LoopLagMonitor = field(default_factory=LoopLagMonitor, repr=False)
    tasks: list[asyncio.Task[None]] = field(default_factory=list, repr=False)

    async def start(self) -> None:
        """Recover state, then serve. On failure the caller still calls ``stop``."""
        recovered = await rebuild_mount_table(
            self.mounter, self.metadata, self.statuses, self.table, self.settings.node_id
        )
        self._spawn(self.loop_monitor.run(), "loop-lag-monitor")
        await self.web.start()
        await self.csi.start()
        if self.settings.provider_health_check:
            self._spawn(self._check_plugins(), "provider-health-check")
        log.info(
            "agent.started",
            version=__version__,
            node=self.settings.node_id,
            socket=self.csi.path,
            mount_mode=self.settings.mount_mode,
            providers=list(self.providers.names()),
            kubelet_root_dir=self.settings.kubelet_root_dir,
            recovered_volumes=recovered.adopted,
            unrecorded_volumes=len(recovered.unrecorded),
            statuses_rewritten=recovered.statuses_written,
            stale_statuses_deleted=recovered.statuses_deleted,
        )

    def _spawn(self, work: Coroutine[None, None, None], name: str) -> None:
        self.tasks.append(asyncio.create_task(work, name=name))

    async def stop(self) -> None:
        """Reverse order of start: stop taking calls, drain them, then the rest."""
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.tasks.clear()
        await self.csi.stop(self.settings.shutdown_grace)
        await self.web.stop()
        await self.providers.close()
        log.info("agent.stopped")

    async def _check_plugins(self) -> None:
        # Go's ticker: the first check one interval after start (a zero interval would spin).
        interval = max(self.settings.provider_health_check_interval, 1.0)
        while True:
            await asyncio.sleep(interval)
            await self.providers.health_check()


def build_agent(settings: Settings, registry: ProviderRegistry | None = None) -> Agent:
    spcs, statuses, service_accounts = _configuration_sources(settings)
    metrics = Metrics()
    table, locks = MountTable(), KeyedLock()
    targets = TargetRules(settings.kubelet_root_dir)
    volumes = KubeletVolumes(targets)
    capacity = VolumeCapacity(tmpfs=settings.mount_mode == "tmpfs", size_bytes=settings.tmpfs_size)
    mounter = make_mounter(settings.mount_mode, volumes, settings.tmpfs_size)
    metadata = JsonVolumeMetadata(volumes, capacity)
    providers = registry or ProviderRegistry(
        timeout=settings.provider_timeout,
        version_key=load_version_key(settings.state_dir),
        options={"vault_address": settings.vault_address},
        trusted_dirs=settings.trusted_file_dirs,
        plugin_directories=(*settings.additional_provider_volume_paths, settings.provider_volume),
        max_recv_bytes=settings.max_call_recv_msg_size,
        service_accounts=service_accounts,
    )
    ports = PublishPorts(
        spcs=spcs,
        providers=providers,
        mounter=mounter,
        writer=AsyncPayloadWriter(
            volumes, max_total_bytes=settings.max_payload_bytes, capacity=capacity
        ),
        statuses=statuses,
        metadata=metadata,
        observer=metrics,
    )
    publish = PublishVolume(
        ports,
        PublishSettings(
            node_name=settings.node_id,
            rotation_enabled=settings.enable_secret_rotation,
            rotation_poll_interval=settings.rotation_poll_interval,
            provider_timeout=settings.provider_timeout,
            targets=targets,
        ),
        table,
        locks,
    )
    unpublish = UnpublishVolume(
        mounter, statuses, metrics, table, locks, node_name=settings.node_id, targets=targets
    )
    csi = CsiServer.for_node(
        driver_name=settings.driver_name,
        version=__version__,
        node_id=settings.node_id,
        publish=publish,
        unpublish=unpublish,
        socket_path=settings.socket_path,
        trace_requests=settings.verbosity >= 1,
    )

    loop_monitor = LoopLagMonitor()
    web = WebServer(
        metrics_addr=settings.metrics_addr,
        health_addr=settings.health_addr,
        metrics=metrics,
        health_checks={"event-loop": loop_monitor.healthy, "csi-socket": csi.serving},
        ready_checks={"csi-socket": csi.accepting},
    )
    return Agent(
        settings, providers, csi, web, table, statuses, metadata, mounter, metrics, loop_monitor
    )


def _configuration_sources(
    settings: Settings,
) -> tuple[SecretProviderClassSource, PodStatusStore, ServiceAccountSource]:
    if not settings.standalone_dir:
        raise ConfigError(
            "--standalone-dir is required: the Kubernetes API adapter is not built yet "
            "(SecretProviderClasses are read from YAML files in that directory)"
        )
    from agent.standalone.spc_source import DirectorySecretProviderClassSource
    from agent.standalone.status_store import DirectoryPodStatusStore

    directory = Path(settings.standalone_dir)
    if not directory.is_dir():
        raise ConfigError(f"--standalone-dir: {directory} is not a directory")
    manifests = DirectorySecretProviderClassSource(directory)
    return manifests, DirectoryPodStatusStore(directory), manifests


def load_version_key(state_dir: str) -> bytes:
    """The HMAC key behind object versions; kept on the node so versions survive restarts."""
    path = Path(state_dir) / "version.key"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    except OSError as err:
        log.warning("agent.version_key_unreadable", path=str(path), error=err.strerror)
        return secrets.token_bytes(32)
    key = secrets.token_bytes(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(key)
    except FileExistsError:
        return path.read_bytes()
    except OSError as err:
        # Still works; object versions just change once when the agent restarts.
        log.warning("agent.version_key_not_saved", path=str(path), error=err.strerror)
    return key


async def serve(settings: Settings, registry: ProviderRegistry | None = None) -> None:
    agent = build_agent(settings, registry)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await agent.start()
        await stop.wait()
        log.info("agent.stopping")
    finally:
        await agent.stop()


def run(settings: Settings, registry: ProviderRegistry | None = None) -> int:
    configure_logging(json=settings.log_format_json, verbosity=settings.verbosity)
    try:
        if sys.platform != "win32":
            import uvloop

            uvloop.run(serve(settings, registry))
        else:
            asyncio.run(serve(settings, registry))
    except AgentError as err:
        log.error("agent.failed", reason=err.reason, error=err.message)
        return 1
    return 0
