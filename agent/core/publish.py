"""NodePublishVolume as a short pipeline of named steps.

Order follows upstream (reference §3.5): request validation, pod info, mount-point check (a
republish of a known volume returns fast), SecretProviderClass lookup in the pod's namespace,
parameter merge (volume attributes win), readonly, tmpfs mount, provider fetch, atomic write,
mount-table record, pod status. A failed first publish unmounts what it mounted; a failed
remount (rotation) is masked so kubelet never tears down a working volume (k/k#121271).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

import structlog

from agent.aio.locks import KeyedLock
from agent.aio.threads import finish_despite_cancellation
from agent.core.mount_table import MountTable
from agent.core.pod_info import read_pod_identity
from agent.core.publish_attempt import Attempt, PublishOutcome
from agent.core.publish_report import PublishReport, owner_can_fix
from agent.core.publish_request import check_request, context_of, merge_attributes
from agent.core.recovery import adopt_volume
from agent.core.secret_jobs import SecretSyncJobs
from agent.core.volume_content import VolumeContentStore, fetch_content
from agent.errors import (
    AgentError,
    InvalidRequest,
    InvalidSecretProviderClass,
    safe_message,
)
from agent.model import (
    SECRET_PROVIDER_CLASS,
    MountResult,
    ProviderRequest,
    PublishRequest,
    VolumeRecord,
    pod_status_name,
)
from agent.ports import (
    PayloadWriter,
    PodEventSink,
    PodStatusStore,
    Provider,
    ProviderLookup,
    PublishObserver,
    SecretProviderClassSource,
    VolumeMetadataStore,
    VolumeMounter,
)

__all__ = ["PublishOutcome", "PublishPorts", "PublishSettings", "PublishVolume"]

log = structlog.get_logger("agent.publish")


@dataclass(frozen=True, slots=True)
class PublishSettings:
    node_name: str
    rotation_enabled: bool = False
    rotation_poll_interval: float = 120.0
    provider_timeout: float = 90.0


@dataclass(slots=True)
class PublishPorts:
    spcs: SecretProviderClassSource
    providers: ProviderLookup
    mounter: VolumeMounter
    writer: PayloadWriter
    statuses: PodStatusStore
    metadata: VolumeMetadataStore
    observer: PublishObserver
    events: PodEventSink | None = None
    # Kubernetes mode: the volume's Secrets (spec.secretObjects) are synced after a write.
    secret_sync: SecretSyncJobs | None = None


class PublishVolume:
    def __init__(
        self,
        ports: PublishPorts,
        settings: PublishSettings,
        table: MountTable,
        locks: KeyedLock,
        clock: Callable[[], float] = time.time,
        *,
        republished: Callable[[VolumeRecord], None] | None = None,
    ) -> None:
        """``republished``, when set, is told of every republish of a known volume (its
        tokens and context refreshed) and such a republish never fetches: the rotation
        scheduler does. Without it, ``settings.rotation_enabled`` refetches a republished
        volume once its interval passed (upstream v1.6's model)."""
        self._ports = ports
        self._settings = settings
        self._table = table
        self._locks = locks
        self._clock = clock
        self._republished = republished
        self._report = PublishReport(ports.observer, ports.events)
        self._content = VolumeContentStore(
            ports.writer, ports.metadata, ports.statuses, table, settings.node_name
        )

    async def __call__(self, request: PublishRequest) -> PublishOutcome:
        started = time.perf_counter()
        attempt: Attempt | None = None
        try:
            check_request(request)
            attempt = Attempt(
                request=request,
                identity=read_pod_identity(request.volume_context, request.secrets),
                spc_name=request.volume_context.get(SECRET_PROVIDER_CLASS, ""),
            )
            async with self._locks.hold(request.target_path):
                outcome = await self._run(attempt)
        except asyncio.CancelledError:
            # Kubelet's deadline or shutdown: still one line and one count per call.
            self._report.failed(request, attempt, "Cancelled", "the call was cancelled", started)
            raise
        except Exception as err:
            reason = err.reason if isinstance(err, AgentError) else "FailedToMount"
            self._report.failed(
                request,
                attempt,
                reason,
                safe_message(err),
                started,
                notify_owner=owner_can_fix(err),
            )
            raise
        self._report.succeeded(request, attempt, outcome, started)
        return outcome

    async def _run(self, attempt: Attempt) -> PublishOutcome:
        existing = await self._existing_mount(attempt)
        if existing is not None:
            return existing
        try:
            provider = await self._prepare(attempt)
            await self._mount(attempt)
            result = await self._fetch(attempt, provider)
            changed = await self._store(attempt, result)
        except asyncio.CancelledError:
            # Still under the target's lock: kubelet's retry must not overlap the undo.
            await finish_despite_cancellation(asyncio.ensure_future(self._undo(attempt)))
            raise
        except Exception as err:
            if attempt.is_remount:
                return self._mask_remount_failure(attempt, err)
            await self._undo(attempt)
            raise
        if not attempt.is_remount:
            return PublishOutcome(attempt.provider, "mounted", len(result.files))
        action = "rotated" if changed else "unchanged"
        return PublishOutcome(
            attempt.provider, action, len(result.files), remount=True, rotated=changed
        )

    async def _existing_mount(self, attempt: Attempt) -> PublishOutcome | None:
        """A known mounted volume is idempotent; with rotation on, a stale one is refetched.

        A mount without record or metadata is either an empty leftover (the agent died between
        mounting and writing), filled like a first publish, or content someone else wrote (e.g.
        the upstream driver before the switch), which is treated like upstream does: left alone,
        or refetched with rotation on, and never unmounted on failure.
        """
        target = attempt.request.target_path
        if not await self._ports.mounter.is_mounted(target):
            return None
        record = self._table.get(target) or await adopt_volume(
            target, self._ports.metadata, self._table
        )
        if record is None:
            return await self._foreign_mount(attempt)
        # Kubelet sends fresh tokens on each republish; keep them for later rotations.
        record.pod = attempt.identity
        record.context = context_of(attempt.request)
        attempt.provider = record.provider
        attempt.current_versions = record.versions
        if self._republished is not None:
            # The rotation scheduler fetches (coalesced, backing off); never kubelet's cadence.
            self._republished(record)
            return PublishOutcome(attempt.provider, "already_mounted")
        due = record.updated_at + self._settings.rotation_poll_interval
        if not self._settings.rotation_enabled or self._clock() < due:
            return PublishOutcome(attempt.provider, "already_mounted")
        attempt.is_remount = True
        return None

    async def _foreign_mount(self, attempt: Attempt) -> PublishOutcome | None:
        target = attempt.request.target_path
        if await self._ports.mounter.is_empty(target):
            log.warning("node_publish.empty_mount_filled", target_path=target)
            attempt.mounted_here = True  # ours to fill, and to unmount if that fails
            return None
        if not self._settings.rotation_enabled:
            return PublishOutcome(attempt.provider, "already_mounted")
        attempt.is_remount = True
        return None

    async def _prepare(self, attempt: Attempt) -> Provider:
        """SecretProviderClass, merged attributes, readonly, and the provider to ask."""
        if not attempt.spc_name:
            raise InvalidRequest(f"{SECRET_PROVIDER_CLASS} is not set in the volume attributes")
        spc = await self._ports.spcs.get(attempt.identity.namespace, attempt.spc_name)
        ref = f"{spc.namespace}/{spc.name}"
        if not spc.provider:
            raise InvalidSecretProviderClass(
                f"spec.provider is not set in secretproviderclass {ref}"
            )
        if not spc.parameters:
            raise InvalidSecretProviderClass(
                f"spec.parameters is not set in secretproviderclass {ref}"
            )
        attempt.provider, attempt.spc = spc.provider, spc
        attempt.attributes = merge_attributes(spc.parameters, attempt.request)
        if not attempt.request.readonly:
            raise InvalidRequest(
                "Readonly is not true in request (set csi.readOnly: true on the volume)"
            )
        return await self._ports.providers.load(spc.provider)

    async def _mount(self, attempt: Attempt) -> None:
        if attempt.is_remount or attempt.mounted_here:
            return
        attempt.mounted_here = True
        await self._ports.mounter.mount(attempt.request.target_path)

    async def _fetch(self, attempt: Attempt, provider: Provider) -> MountResult:
        request = ProviderRequest(
            attributes=attempt.attributes,
            secrets=attempt.request.secrets,
            identity=attempt.identity,
            target_path=attempt.request.target_path,
            current_versions=attempt.current_versions,
        )
        return await fetch_content(
            provider, attempt.provider, request, self._settings.provider_timeout
        )

    async def _store(self, attempt: Attempt, result: MountResult) -> bool:
        """Write the files, then record them; True when the visible content changed."""
        changed = await self._content.write_files(attempt.request.target_path, result)
        attempt.files_changed = changed
        previous, now = self._table.get(attempt.request.target_path), self._clock()
        record = VolumeRecord(
            target_path=attempt.request.target_path,
            volume_id=attempt.request.volume_id,
            pod=attempt.identity,
            spc_name=attempt.spc_name,
            provider=attempt.provider,
            versions=result.versions,
            mounted_at=previous.mounted_at if previous else now,
            updated_at=now,
            context=context_of(attempt.request),
        )
        await self._content.record(record)
        jobs, spc = self._ports.secret_sync, attempt.spc
        if jobs is not None and spc is not None and (changed or not attempt.is_remount):
            jobs.written(record, spc)  # in the background: kubelet never waits on Secrets
        return changed

    def _mask_remount_failure(self, attempt: Attempt, err: Exception) -> PublishOutcome:
        reason = err.reason if isinstance(err, AgentError) else "FailedToMount"
        record = self._table.get(attempt.request.target_path)
        if record is not None:
            # Back off a full interval instead of hammering a failing store on every republish.
            self._table.put(replace(record, updated_at=self._clock()))
        return PublishOutcome(
            attempt.provider,
            "remount_failed",
            remount=True,
            rotated=attempt.files_changed,
            error_type=reason,
            error=safe_message(err),
            notify_owner=owner_can_fix(err),
        )

    async def _undo(self, attempt: Attempt) -> None:
        """Leave nothing of a failed first publish: no mount, no status, no table entry."""
        if not attempt.mounted_here:
            return
        target, pod = attempt.request.target_path, attempt.identity
        self._table.forget(target)
        name = pod_status_name(pod.name, pod.namespace, attempt.spc_name)
        # Each step on its own: a failed unmount must not keep a "mounted: true" status around.
        steps: tuple[Callable[[], Awaitable[None]], ...] = (
            lambda: self._ports.mounter.unmount(target),
            lambda: self._ports.statuses.delete(pod.namespace, name),
        )
        for step in steps:
            try:
                await step()
            except AgentError as err:
                log.error("node_publish.cleanup_failed", target_path=target, error=err.message)
