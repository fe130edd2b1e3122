"""The running agent: what it owns, started and stopped in order (app.py builds it).

``start`` logs the effective configuration, connects to the API (Kubernetes mode), rebuilds the
mount table from disk, starts the background tasks, warms up (standalone manifests, plugin
channels) and only then serves the CSI socket; ``stop`` undoes it in reverse, draining calls
first. Both are idempotent; a failed start is followed by ``stop`` all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from agent import __version__
from agent.aio.loop_monitor import LoopLagMonitor
from agent.config import Settings
from agent.core.mount_table import MountTable
from agent.core.pod_cleanup import ReleasePodVolumes
from agent.core.recovery import rebuild_mount_table
from agent.core.secret_jobs import SecretSyncJobs
from agent.csi.server import CsiServer
from agent.kubelet_root import FIX as KUBELET_ROOT_FIX
from agent.kubelet_root import POD_UID_ENV, kubelet_root_problem
from agent.metrics import Metrics
from agent.platform import NodePlatform
from agent.platform import current as current_platform
from agent.ports import PodStatusStore
from agent.ports_volumes import VolumeMetadataStore, VolumeMounter
from agent.providers.registry import ProviderRegistry
from agent.rotation.scheduler import RotationScheduler
from agent.web import WebServer

if TYPE_CHECKING:
    from agent.k8s.adapter import KubernetesAdapter
    from agent.standalone.spc_source import DirectorySecretProviderClassSource
    from agent.standalone.status_store import DirectoryPodStatusStore
    from agent.sync.resync import SecretResync

# Longest the start waits for plugins to answer their warm-up call before serving anyway.
WARM_UP_BUDGET_SECONDS = 0.5
# How often standalone mode re-reads its manifests for annotation edits (rotation on).
MANIFEST_RESCAN_SECONDS = 2.0

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
    metadata: VolumeMetadataStore
    mounter: VolumeMounter
    metrics: Metrics = field(repr=False)
    loop_monitor: LoopLagMonitor = field(default_factory=LoopLagMonitor, repr=False)
    tasks: list[asyncio.Task[None]] = field(default_factory=list, repr=False)
    cluster: KubernetesAdapter | None = field(default=None, repr=False)
    cleanup: ReleasePodVolumes | None = field(default=None, repr=False)
    # Kubernetes mode: sync as Kubernetes Secret (spec.secretObjects) and its periodic re-sync.
    secret_sync: SecretSyncJobs | None = field(default=None, repr=False)
    secret_resync: SecretResync | None = field(default=None, repr=False)
    rotation: RotationScheduler | None = field(default=None, repr=False)
    manifests: DirectorySecretProviderClassSource | None = field(default=None, repr=False)
    # Standalone mode: status files written behind the publishes; flushed at stop.
    status_files: DirectoryPodStatusStore | None = field(default=None, repr=False)
    platform: NodePlatform = field(default_factory=current_platform, repr=False)

    async def start(self) -> None:
        """Connect (Kubernetes mode), recover state, then serve. On failure the caller still
        calls ``stop``."""
        log.info("agent.configuration", **effective_configuration(self.settings))
        problem = kubelet_root_problem(
            self.settings.kubelet_root_dir, os.environ.get(POD_UID_ENV, "")
        )
        if problem:
            log.error(
                "agent.kubelet_root_dir_mismatch",
                kubelet_root_dir=self.settings.kubelet_root_dir,
                error=problem,
                fix=KUBELET_ROOT_FIX,
            )
        if self.cluster is not None:
            await self.cluster.start(self.providers.set_version_key)
        recovered = await rebuild_mount_table(
            self.mounter, self.metadata, self.statuses, self.table, self.settings.node_id
        )
        self._spawn(self.loop_monitor.run(), "loop-lag-monitor")
        if self.rotation is not None:
            self._spawn(self.rotation.run(), "rotation")
            if self.manifests is not None:
                self._spawn(self.manifests.watch(MANIFEST_RESCAN_SECONDS), "manifest-rescan")
        await self.web.start()
        await self._warm_up()
        await self.csi.start()
        if self.settings.provider_health_check:
            self._spawn(self._check_plugins(), "provider-health-check")
        if self.secret_resync is not None:
            self._spawn(self.secret_resync.run(), "secret-resync")
        log.info(
            "agent.started",
            version=__version__,
            node=self.settings.node_id,
            socket=self.csi.path,
            mount_mode=self.settings.mount_mode,
            node_os=self.platform.name,
            event_loop=type(asyncio.get_running_loop()).__module__.split(".")[0],
            mode="kubernetes" if self.cluster is not None else "standalone",
            providers=list(self.providers.names()),
            kubelet_root_dir=self.settings.kubelet_root_dir,
            recovered_volumes=recovered.adopted,
            unrecorded_volumes=len(recovered.unrecorded),
            refused_volumes=len(recovered.refused),
            statuses_rewritten=recovered.statuses_written,
            stale_statuses_deleted=recovered.statuses_deleted,
        )

    async def _warm_up(self) -> None:
        """Before the socket serves, what the first publish would otherwise do lazily: read
        the standalone manifests and connect to the installed plugins (each asked its
        version). Done here, not beside the first publish, where it would compete with it for
        the loop and the GIL; bounded so a plugin that hangs delays serving by at most
        WARM_UP_BUDGET_SECONDS (its channel then connects on the first publish)."""
        if self.manifests is not None:
            await self.manifests.rescan()
        try:
            async with asyncio.timeout(WARM_UP_BUDGET_SECONDS):
                await self.providers.warm_plugins()
        except TimeoutError:
            log.info("provider.plugin_warm_up_timeout", budget_s=WARM_UP_BUDGET_SECONDS)

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
        if self.rotation is not None:
            await self.rotation.close()
        await self.csi.stop(self.settings.shutdown_grace)
        await self.web.stop()
        if self.secret_sync is not None:
            await self.secret_sync.close()
        if self.cleanup is not None:
            await self.cleanup.close()
        if self.status_files is not None:
            await self.status_files.close()
        if self.cluster is not None:
            await self.cluster.stop()
        await self.providers.close()
        log.info("agent.stopped")

    async def _check_plugins(self) -> None:
        # Go's ticker: the first check one interval after start (a zero interval would spin).
        interval = max(self.settings.provider_health_check_interval, 1.0)
        while True:
            await asyncio.sleep(interval)
            await self.providers.health_check()


def effective_configuration(settings: Settings) -> dict[str, object]:
    """Every setting as the flags left it, for the first line of ``kubectl logs``. Settings
    hold no secret material (paths, addresses, names, durations in seconds), so all are shown."""
    shown = dataclasses.asdict(settings)
    for url in ("vault_address", "aws_pod_identity_endpoint"):
        shown[url] = _without_userinfo(shown[url])  # user:password@ in a URL is a credential
    shown["payload_limit"] = settings.payload_limit
    return {"settings": shown}


def _without_userinfo(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    host, at, after = rest.rpartition("@")
    return f"{scheme}{sep}[REDACTED]@{after}" if sep and at and "/" not in host else url
