"""NodePublishVolume as a short pipeline of named steps.

Order follows upstream (reference §3.5): request validation, pod info, mount-point check (a
republish of a mounted volume returns fast), SecretProviderClass lookup in the pod's namespace,
parameter merge (volume attributes win), readonly, tmpfs mount, provider fetch, atomic write,
mount-table record, pod status. A failed first publish unmounts what it mounted; a failed
remount (rotation) is masked so kubelet never tears down a working volume (k/k#121271).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import structlog

from agent.aio.locks import KeyedLock
from agent.core.mount_table import MountTable
from agent.core.pod_info import read_pod_identity
from agent.core.publish_request import check_request, merge_attributes
from agent.core.records import record_to_metadata
from agent.errors import (
    AgentError,
    InvalidRequest,
    InvalidSecretProviderClass,
    ProviderError,
    ProviderTimeout,
    safe_message,
)
from agent.model import (
    SECRET_PROVIDER_CLASS,
    MountResult,
    PodIdentity,
    PodStatus,
    ProviderRequest,
    PublishRequest,
    SecretProviderClass,
    VolumeRecord,
    pod_status_name,
)
from agent.ports import (
    PayloadWriter,
    PodStatusStore,
    Provider,
    ProviderLookup,
    PublishObserver,
    SecretProviderClassSource,
    VolumeMetadataStore,
    VolumeMounter,
)

log = structlog.get_logger("agent.publish")


@dataclass(frozen=True, slots=True)
class PublishSettings:
    node_name: str
    rotation_enabled: bool = False
    rotation_poll_interval: float = 120.0
    provider_timeout: float = 90.0


@dataclass(frozen=True, slots=True)
class PublishOutcome:
    provider: str
    action: str  # mounted | already_mounted | rotated | unchanged | remount_failed
    files: int = 0


@dataclass(slots=True)
class PublishPorts:
    spcs: SecretProviderClassSource
    providers: ProviderLookup
    mounter: VolumeMounter
    writer: PayloadWriter
    statuses: PodStatusStore
    metadata: VolumeMetadataStore
    observer: PublishObserver


@dataclass(slots=True)
class _Attempt:
    """What the steps of one publish learn, in order."""

    request: PublishRequest
    identity: PodIdentity
    spc_name: str
    provider: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    is_remount: bool = False
    mounted_here: bool = False


class PublishVolume:
    def __init__(
        self,
        ports: PublishPorts,
        settings: PublishSettings,
        table: MountTable,
        locks: KeyedLock,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ports = ports
        self._settings = settings
        self._table = table
        self._locks = locks
        self._clock = clock

    async def __call__(self, request: PublishRequest) -> PublishOutcome:
        started = time.perf_counter()
        attempt: _Attempt | None = None
        try:
            check_request(request)
            attempt = _Attempt(
                request=request,
                identity=read_pod_identity(request.volume_context, request.secrets),
                spc_name=request.volume_context.get(SECRET_PROVIDER_CLASS, ""),
            )
            async with self._locks.hold(request.target_path):
                outcome = await self._run(attempt)
        except Exception as err:
            provider = attempt.provider if attempt else ""
            reason = err.reason if isinstance(err, AgentError) else "FailedToMount"
            self._ports.observer.publish_failed(provider, reason, time.perf_counter() - started)
            log.warning(
                "node_publish.failed",
                **_context(request, attempt, started),
                reason=reason,
                error=safe_message(err),
            )
            raise
        self._ports.observer.publish_succeeded(outcome.provider, time.perf_counter() - started)
        log.info(
            "node_publish.completed",
            **_context(request, attempt, started),
            outcome=outcome.action,
            files=outcome.files,
        )
        return outcome

    async def _run(self, attempt: _Attempt) -> PublishOutcome:
        existing = await self._existing_mount(attempt)
        if existing is not None:
            return existing
        spc = await self._load_class(attempt)
        attempt.attributes = merge_attributes(spc.parameters, attempt.request)
        if not attempt.request.readonly:
            raise InvalidRequest(
                "Readonly is not true in request (set csi.readOnly: true on the volume)"
            )
        provider = self._ports.providers.get(attempt.provider)
        try:
            await self._mount(attempt)
            result = await self._fetch(attempt, provider)
            store = asyncio.ensure_future(self._store(attempt, result))
            try:
                changed = await asyncio.shield(store)
            except asyncio.CancelledError:
                # Let a running file write finish before the undo unmounts: a write landing
                # after the unmount could put secret bytes on the node's disk.
                await asyncio.wait({store})
                raise
        except Exception as err:
            if attempt.is_remount:
                return self._mask_remount_failure(attempt, err)
            await self._undo_mount(attempt)
            raise
        except asyncio.CancelledError:
            # Kubelet gave up (deadline); still leave nothing mounted behind.
            await asyncio.shield(self._undo_mount(attempt))
            raise
        action = "mounted" if not attempt.is_remount else ("rotated" if changed else "unchanged")
        return PublishOutcome(attempt.provider, action, len(result.files))

    async def _existing_mount(self, attempt: _Attempt) -> PublishOutcome | None:
        """A mounted target is idempotent; with rotation on, a stale one is refetched (remount)."""
        target = attempt.request.target_path
        if not await self._ports.mounter.is_mounted(target):
            return None
        record = self._table.get(target)
        if record is not None:
            # Kubelet sends fresh tokens on each republish; keep them for later rotations.
            record.pod = attempt.identity
            attempt.provider = record.provider
        if not self._settings.rotation_enabled or (
            record is not None
            and self._clock() < record.updated_at + self._settings.rotation_poll_interval
        ):
            return PublishOutcome(attempt.provider, "already_mounted")
        attempt.is_remount = True
        return None

    async def _load_class(self, attempt: _Attempt) -> SecretProviderClass:
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
        attempt.provider = spc.provider
        return spc

    async def _mount(self, attempt: _Attempt) -> None:
        if attempt.is_remount:
            return
        await self._ports.mounter.mount(attempt.request.target_path)
        attempt.mounted_here = True

    async def _fetch(self, attempt: _Attempt, provider: Provider) -> MountResult:
        request = ProviderRequest(
            attributes=attempt.attributes,
            secrets=attempt.request.secrets,
            identity=attempt.identity,
            target_path=attempt.request.target_path,
        )
        timeout = self._settings.provider_timeout
        try:
            async with asyncio.timeout(timeout):
                result = await provider.mount(request)
        except TimeoutError:
            raise ProviderTimeout(
                f"provider {attempt.provider!r} did not answer within {timeout:g}s"
            ) from None
        if not result.versions:
            raise ProviderError(f"provider {attempt.provider!r} returned no object versions")
        return result

    async def _store(self, attempt: _Attempt, result: MountResult) -> bool:
        """Write the files, then record them; True when the visible content changed."""
        # No files but versions: a legacy plugin wrote into target_path itself (upstream #551).
        changed = bool(result.files) and await self._ports.writer.write(
            attempt.request.target_path, result.files
        )
        await self._record(attempt, result)
        return changed

    async def _record(self, attempt: _Attempt, result: MountResult) -> None:
        request, identity = attempt.request, attempt.identity
        now = self._clock()
        previous = self._table.get(request.target_path)
        record = VolumeRecord(
            target_path=request.target_path,
            volume_id=request.volume_id,
            pod=identity,
            spc_name=attempt.spc_name,
            provider=attempt.provider,
            versions=result.versions,
            mounted_at=previous.mounted_at if previous else now,
            updated_at=now,
        )
        status = PodStatus(
            name=pod_status_name(identity.name, identity.namespace, attempt.spc_name),
            namespace=identity.namespace,
            pod_name=identity.name,
            pod_uid=identity.uid,
            spc_name=attempt.spc_name,
            target_path=request.target_path,
            node_name=self._settings.node_name,
            mounted=True,
            objects=tuple(sorted(result.versions, key=lambda v: v.id)),
        )
        # Independent writes (volume metadata on the tmpfs, status in the store): run together.
        await asyncio.gather(
            self._ports.metadata.save(request.target_path, record_to_metadata(record)),
            self._ports.statuses.upsert(status),
        )
        self._table.put(record)

    def _mask_remount_failure(self, attempt: _Attempt, err: Exception) -> PublishOutcome:
        reason = err.reason if isinstance(err, AgentError) else "FailedToMount"
        self._ports.observer.publish_failed(attempt.provider, reason, 0.0)
        log.warning(
            "node_publish.remount_failed",
            target_path=attempt.request.target_path,
            provider=attempt.provider,
            reason=reason,
            error=safe_message(err),
        )
        record = self._table.get(attempt.request.target_path)
        if record is not None:
            # Back off a full interval instead of hammering a failing store on every republish.
            self._table.put(replace(record, updated_at=self._clock()))
        return PublishOutcome(attempt.provider, "remount_failed")

    async def _undo_mount(self, attempt: _Attempt) -> None:
        if not attempt.mounted_here:
            return
        target, pod = attempt.request.target_path, attempt.identity
        try:
            await self._ports.mounter.unmount(target)
            # The status may have been written just before a sibling write failed.
            name = pod_status_name(pod.name, pod.namespace, attempt.spc_name)
            await self._ports.statuses.delete(pod.namespace, name)
        except AgentError as err:
            log.error("node_publish.cleanup_failed", target_path=target, error=err.message)


def _context(
    request: PublishRequest, attempt: _Attempt | None, started: float
) -> dict[str, object]:
    """The stable keys of every publish log line (upstream logs pod and target path too)."""
    return {
        "pod": attempt.identity.name if attempt else None,
        "namespace": attempt.identity.namespace if attempt else None,
        "spc": attempt.spc_name if attempt else None,
        "provider": attempt.provider if attempt else None,
        "target_path": request.target_path,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
    }
