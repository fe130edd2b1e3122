"""Composition root: build the adapters, start the servers, stop them in order on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import secrets
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
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
from agent.core.recovery import rebuild_mount_table
from agent.core.secret_jobs import SecretSyncJobs
from agent.core.unpublish import UnpublishVolume
from agent.csi.server import CsiServer
from agent.errors import AgentError, ConfigError
from agent.fs.mount_syscalls import require_mount_capability
from agent.fs.stack import build_volume_stack
from agent.kubelet_root import FIX as KUBELET_ROOT_FIX
from agent.kubelet_root import POD_UID_ENV, kubelet_root_problem
from agent.logs import configure_logging
from agent.metrics import Metrics
from agent.platform import NodePlatform
from agent.platform import current as current_platform
from agent.platform.runtime import StopSignals
from agent.platform.runtime import run as run_loop
from agent.ports import (
    NodeLabelSource,
    PodEventSink,
    PodStatusStore,
    SecretProviderClassSource,
    ServiceAccountSource,
    ServiceAccountTokenMinter,
)
from agent.ports_sync import SecretSync
from agent.ports_volumes import VolumeFileReader, VolumeMetadataStore, VolumeMounter
from agent.providers.factories import BUILTIN_FACTORIES, ProviderFactory
from agent.providers.registry import ProviderRegistry
from agent.rotation.policy import RotationSettings
from agent.rotation.scheduler import RotationPorts, RotationScheduler
from agent.targets import make_target_rules
from agent.web import Check, WebServer

if TYPE_CHECKING:
    from agent.k8s.adapter import KubernetesAdapter
    from agent.standalone.spc_source import DirectorySecretProviderClassSource
    from agent.standalone.status_store import DirectoryPodStatusStore
    from agent.sync.resync import SecretResync
    from agent.sync.syncer import SecretSyncer

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
    sources = _configuration_sources(settings, metrics, retry_policy)
    sync = _secret_sync(sources.cluster, table, metrics, volumes.read_files)
    jobs = SecretSyncJobs(sync) if sync is not None else None
    providers = registry or ProviderRegistry(
        timeout=settings.provider_timeout,
        version_key=load_version_key(settings.state_dir),
        options={
            "vault_address": settings.vault_address,
            "aws_pod_identity_endpoint": settings.aws_pod_identity_endpoint,
            "azure_cloud_name": settings.azure_cloud_name,
            "azure_construct_pem_chain": str(settings.azure_construct_pem_chain).lower(),
            "azure_write_cert_and_key_in_separate_files": str(
                settings.azure_write_cert_and_key_in_separate_files
            ).lower(),
        },
        trusted_dirs=settings.trusted_file_dirs,
        plugin_directories=(*settings.additional_provider_volume_paths, settings.provider_volume),
        max_recv_bytes=settings.max_call_recv_msg_size,
        service_accounts=sources.service_accounts,
        prefer_plugins=settings.prefer_plugin_providers,
        max_payload_bytes=settings.payload_limit,
        unix_sockets=platform.sockets,
        node_labels=sources.node_labels,
        factories=builtin_factories(settings.builtin_providers),
    )
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
            resync = SecretResync(table, sources.spcs, sync, interval=interval, clock=clock)
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
        cluster.spcs,
        read_files,
        events=cluster.events,
        observer=metrics,
    )


def _rotation(
    settings: Settings,
    sources: _Sources,
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
    rotation = RotationScheduler(
        RotationPorts(
            spcs=ports.spcs,
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


@dataclass(frozen=True, slots=True)
class _Sources:
    """Where SecretProviderClasses and service accounts come from, and statuses go."""

    spcs: SecretProviderClassSource
    statuses: PodStatusStore
    service_accounts: ServiceAccountSource
    events: PodEventSink | None = None
    cluster: KubernetesAdapter | None = None
    minter: ServiceAccountTokenMinter | None = None
    manifests: DirectorySecretProviderClassSource | None = None
    status_files: DirectoryPodStatusStore | None = None
    node_labels: NodeLabelSource | None = None


def _configuration_sources(
    settings: Settings, metrics: Metrics, retry_policy: BackoffPolicy | None
) -> _Sources:
    if not settings.standalone_dir:
        # Imported only in Kubernetes mode: standalone never pays for the API client.
        from agent.k8s.adapter import KubernetesAdapter

        cluster = KubernetesAdapter(settings, metrics.api_request, retry_policy)
        return _Sources(
            cluster.spcs,
            cluster.statuses,
            cluster.service_accounts,
            cluster.events,
            cluster,
            minter=cluster.tokens,
            node_labels=cluster.node_labels,
        )
    from agent.standalone.nodes import DirectoryNodeLabels
    from agent.standalone.spc_source import DirectorySecretProviderClassSource
    from agent.standalone.status_store import DirectoryPodStatusStore

    directory = Path(settings.standalone_dir)
    if not directory.is_dir():
        raise ConfigError(f"--standalone-dir: {directory} is not a directory")
    manifests = DirectorySecretProviderClassSource(directory)
    status_files = DirectoryPodStatusStore(directory)
    _require_writable(status_files.root)
    # Without --nodeid there is no Node manifest to look for.
    nodes = DirectoryNodeLabels(manifests, settings.node_id) if settings.node_id else None
    return _Sources(
        manifests,
        status_files,
        manifests,
        manifests=manifests,
        status_files=status_files,
        node_labels=nodes,
    )


def _require_writable(status_dir: Path) -> None:
    """ConfigError naming ``--standalone-dir`` when no pod status could ever be written there:
    every NodePublishVolume would fail on it (typical of an unprivileged run on root's files)."""
    existing = next(path for path in (status_dir, status_dir.parent) if path.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        uid = os.geteuid() if hasattr(os, "geteuid") else -1
        raise ConfigError(
            f"--standalone-dir: the agent (uid {uid}) cannot write pod statuses under "
            f"{status_dir}: make {existing} writable by the agent's user"
        )


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


def builtin_factories(names: Sequence[str]) -> dict[str, ProviderFactory]:
    """The built-in providers ``--builtin-providers`` keeps; a name left out is served by an
    upstream plugin socket if one exists, like any provider the agent does not build in."""
    return {name: factory for name, factory in BUILTIN_FACTORIES.items() if name in names}


_STATE_DIR_FIX = (
    "point --state-dir at a directory the agent's user can write (an unprivileged run's "
    "default /var/run/secrets-store-agent is root's); until then object versions change "
    "whenever the agent restarts"
)


def load_version_key(state_dir: str) -> bytes:
    """The HMAC key behind object versions; kept on the node so versions survive restarts."""
    path = Path(state_dir) / "version.key"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    except OSError as err:
        log.warning(
            "agent.version_key_unreadable", path=str(path), error=err.strerror, fix=_STATE_DIR_FIX
        )
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
        log.warning(
            "agent.version_key_not_saved", path=str(path), error=err.strerror, fix=_STATE_DIR_FIX
        )
    return key


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
