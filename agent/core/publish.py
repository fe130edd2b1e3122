"""NodePublishVolume as a short pipeline of named steps.

Order follows upstream (reference §3.5): request validation, pod info, mount-point check (a
republish of a known volume returns fast), SecretProviderClass lookup in the pod's namespace,
parameter merge (volume attributes win), readonly, tmpfs mount, provider fetch, atomic write,
mount-table record, pod status. A republish of a known volume only refreshes its tokens (the
rotation scheduler, ``agent.rotation``, fetches when it is due). A failed first publish unmounts
what it mounted; a failed refetch of a volume already mounted but unrecorded (adopted after a
restart) is masked so kubelet never tears down a working volume (k/k#121271).

A first publish whose class the source holds without I/O checks in the hop that mounts
(``_first_publish``): kubelet calls between pod starts, and every hop of a paced publish pays a
thread wake-up. A provider that returns every file is asked before that hop, which then also
writes and records (one hop per publish); its error is raised after the check, in upstream's
order. What the check finds decides as on the step-by-step path.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from agent.aio.locks import KeyedLock
from agent.aio.threads import finish_despite_cancellation, run_blocking
from agent.core.mount_table import MountTable, pod_status_key
from agent.core.pod_info import read_pod_identity
from agent.core.publish_attempt import Attempt, Prefetched, PublishOutcome
from agent.core.publish_check import CheckFirst, PublishCheck
from agent.core.publish_report import PublishReport, owner_can_fix
from agent.core.publish_request import (
    check_class,
    check_request,
    context_of,
    merge_attributes,
)
from agent.core.recovery import adopt_volume
from agent.core.secret_jobs import SecretSyncJobs
from agent.core.volume_content import VolumeContentStore, fetch_content
from agent.errors import (
    AgentError,
    InvalidRequest,
    safe_message,
)
from agent.model import (
    SECRET_PROVIDER_CLASS,
    MountResult,
    ProviderRequest,
    PublishRequest,
    SecretProviderClass,
    VolumeContent,
    VolumeRecord,
    VolumeState,
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
from agent.targets import TargetRules

__all__ = ["PublishOutcome", "PublishPorts", "PublishSettings", "PublishVolume"]

log = structlog.get_logger("agent.publish")


@dataclass(frozen=True, slots=True)
class PublishSettings:
    node_name: str
    rotation_enabled: bool = False
    provider_timeout: float = 90.0
    targets: TargetRules = field(default_factory=TargetRules)


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
        """A republish of a known volume only refreshes its tokens and context and never
        fetches, so kubelet's pod-sync cadence never multiplies provider calls: the rotation
        scheduler fetches when the volume is due. ``republished`` (the scheduler, with
        ``--enable-secret-rotation``) is told of each such republish."""
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
        self._check = PublishCheck(ports.mounter, ports.spcs)
        # A first publish can check in the hop that mounts (``_first_publish``).
        self._blocking_mounter = self._content.joins_mount(ports.mounter)
        self._check_first = CheckFirst()

    async def __call__(self, request: PublishRequest) -> PublishOutcome:
        started = time.perf_counter()
        attempt: Attempt | None = None
        try:
            request = check_request(request, self._settings.targets)
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
        first = await self._first_publish(attempt)
        if first is not None:
            return first
        lookup = self._early_lookup(attempt)
        try:
            existing = await self._existing_mount(attempt)
        except BaseException as err:
            if isinstance(err, Exception):  # refused: kubelet retries it (``CheckFirst``)
                self._check_first.add(attempt.request.target_path)
            await _discard(lookup)
            raise
        if existing is not None:
            await _discard(lookup)
            return existing
        try:
            provider = await self._prepare(attempt, lookup)
            if not _files_only(provider):
                await self._mount(attempt)  # the provider may write into the target itself
            result = await self._fetch(attempt, provider)
            await self._store(attempt, result)
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
        if attempt.adopting:
            return PublishOutcome(attempt.provider, "adopted", len(result.files))
        changed = attempt.files_changed
        action = "rotated" if changed else "unchanged"
        return PublishOutcome(
            attempt.provider, action, len(result.files), remount=True, rotated=changed
        )

    async def _first_publish(self, attempt: Attempt) -> PublishOutcome | None:
        """A first publish whose class the source holds without I/O, with one hop fewer.

        For a target the mount table does not know (after the restart scan: a first publish)
        and the check never refused or found someone else's (``CheckFirst``), a readonly
        request and a class that passes ``check_class``, the mount-point check and
        the class re-read run at the start of the hop that mounts
        (``PublishCheck.still_first_blocking``) instead of in a hop of their own. A provider
        that returns every file is asked first, and that one hop also writes and records
        (``_ask_then_store``); any other (an upstream plugin may write into the target itself)
        is asked once that hop mounted (``_mount_then_ask``). None when not eligible, or when
        the hop found the target mounted already or the class changed: nothing was done, and
        the step-by-step path runs.
        """
        request = attempt.request
        target = request.target_path
        known = self._table.get(target) is not None or target in self._check_first
        if self._blocking_mounter is None or known or not (attempt.spc_name and request.readonly):
            return None
        spc = self._check.cached(attempt.identity.namespace, attempt.spc_name)
        provider = await self._provider_for(spc) if spc is not None else None
        if spc is None or provider is None:
            return None
        attempt.provider, attempt.spc = spc.provider, spc
        attempt.attributes = merge_attributes(spc.parameters, request)
        steps = self._ask_then_store if _files_only(provider) else self._mount_then_ask
        try:
            result = await steps(attempt, provider)
        except asyncio.CancelledError:
            if _stopped_in_the_check(attempt):
                _forget_class(attempt)
            # Still under the target's lock: kubelet's retry must not overlap the undo.
            await finish_despite_cancellation(asyncio.ensure_future(self._undo(attempt)))
            raise
        except Exception:
            if _stopped_in_the_check(attempt):  # refused: kubelet retries it, with backoff
                _forget_class(attempt)
                self._check_first.add(target)
            await self._undo(attempt)
            raise
        if result is None:
            _forget_class(attempt)
            return None
        return PublishOutcome(attempt.provider, "mounted", len(result.files))

    async def _provider_for(self, spc: SecretProviderClass) -> Provider | None:
        """``spc``'s provider when the class passes ``check_class``; None otherwise (the
        step-by-step path reports why, in upstream's order: also a factory's own error, an
        entry point's bug or a missing dependency, after the mount-point check)."""
        try:
            check_class(spc)
            return await self._ports.providers.load(spc.provider)
        except Exception:
            return None

    async def _ask_then_store(self, attempt: Attempt, provider: Provider) -> MountResult | None:
        """Ask the provider, then check, mount, write and record in one hop. A provider error is
        kept (``attempt.prefetched``), not raised: the step-by-step path raises it after the
        check when the class is still the one asked with, so one publish never asks twice."""
        assert attempt.spc is not None
        try:
            result = await self._ask(provider, attempt.provider, attempt.attributes, attempt)
        except Exception as err:
            attempt.prefetched = Prefetched(attempt.spc, error=err)
            return None
        attempt.prefetched = Prefetched(attempt.spc, result=result)
        stored = await self._store(attempt, result, self._still_first(attempt))
        return result if stored else None

    async def _mount_then_ask(self, attempt: Attempt, provider: Provider) -> MountResult | None:
        """Check and mount in one hop, then ask the provider and store in a second."""
        mounter, still_first = self._blocking_mounter, self._still_first(attempt)
        assert mounter is not None
        target = attempt.request.target_path

        def check_and_mount() -> bool:
            if not still_first():
                return False
            mounter.mount_blocking(target)
            return True

        if not await run_blocking(check_and_mount):
            return None
        result = await self._ask(provider, attempt.provider, attempt.attributes, attempt)
        await self._store(attempt, result)
        return result

    def _still_first(self, attempt: Attempt) -> Callable[[], bool]:
        """The check at the start of a first publish's hop, for its worker thread: True when the
        target is still new and the class unchanged. It then marks the mount as this call's
        before the mount starts: from there a failure or cancellation unmounts."""
        spc, target = attempt.spc, attempt.request.target_path
        assert spc is not None
        attempt.first_check = True

        def still_first() -> bool:
            if not self._check.still_first_blocking(target, spc):
                return False
            attempt.mounted_here = True
            return True

        return still_first

    async def _existing_mount(self, attempt: Attempt) -> PublishOutcome | None:
        """A known mounted volume is idempotent (see :meth:`_known_volume`).

        A volume the table does not know (after a restart, or a crash) is judged by what is in
        it: with metadata it is adopted; otherwise see :meth:`_unrecorded_volume`.
        """
        target = attempt.request.target_path
        mounter = self._ports.mounter
        record = self._table.get(target)
        if record is not None:
            if await mounter.is_mounted(target):
                return self._known_volume(attempt, record)
            self._table.forget(target)  # its mount went away: publish afresh
        if self._check.joined and attempt.spc_name:
            state, attempt.class_read = await self._check.inspect_and_read(target)
        else:
            state = await mounter.inspect(target)
        if state is None:
            return None
        if state.has_metadata and state.content is not VolumeContent.PARTIAL:
            record = await adopt_volume(target, self._ports.metadata, self._table)
            if record is not None:
                return self._known_volume(attempt, record)
        return self._unrecorded_volume(attempt, state)

    def _known_volume(self, attempt: Attempt, record: VolumeRecord) -> PublishOutcome:
        # Kubelet sends fresh tokens on each republish; keep them for later rotations.
        record.pod = attempt.identity
        record.context = context_of(attempt.request)
        attempt.provider = record.provider
        if self._republished is not None:
            # The rotation scheduler fetches (coalesced, backing off); never kubelet's cadence.
            self._republished(record)
        return PublishOutcome(record.provider, "already_mounted")

    def _unrecorded_volume(self, attempt: Attempt, state: VolumeState) -> PublishOutcome | None:
        """A mounted volume without the agent's metadata.

        - empty, or only the agent's own artefacts without ``..data``: a first publish that died
          part way (between mount and write, or inside the write). It is the agent's to
          complete like a first publish; a failure unmounts it.
        - the atomic writer's whole layout: killed between the write and the metadata save, or
          written by the upstream driver before the switch. Refetched and recorded (adopted);
          a failure is masked, as for any working volume.
        - anything else someone else wrote: left alone as upstream does, or refetched with
          rotation on, and never unmounted on failure.
        """
        target = attempt.request.target_path
        if state.content in (VolumeContent.EMPTY, VolumeContent.PARTIAL):
            log.warning(
                "node_publish.unfinished_volume_completed",
                target_path=target,
                content=state.content.value,
            )
            attempt.mounted_here = True  # ours to fill, and to unmount if that fails
            return None
        if state.content is VolumeContent.COMPLETE:
            attempt.is_remount = attempt.adopting = True
            return None
        if not self._settings.rotation_enabled:
            self._check_first.add(target)
            return PublishOutcome(attempt.provider, "already_mounted")
        attempt.is_remount = True
        return None

    def _early_lookup(self, attempt: Attempt) -> asyncio.Future[SecretProviderClass] | None:
        """A target the mount table does not know is nearly always a first publish: its
        SecretProviderClass lookup (a worker-thread hop in standalone mode) starts beside the
        mount-point check instead of after it, so a paced publish pays one wake-up for both.
        Its outcome is used only after that check, so upstream's order of errors holds. Not
        needed when the lookup's re-read joins the check's hop (``publish_check``)."""
        if not attempt.spc_name or self._table.get(attempt.request.target_path) is not None:
            return None
        if self._check.joined:
            return None
        return asyncio.ensure_future(
            self._ports.spcs.get(attempt.identity.namespace, attempt.spc_name)
        )

    async def _prepare(
        self, attempt: Attempt, lookup: asyncio.Future[SecretProviderClass] | None = None
    ) -> Provider:
        """SecretProviderClass, merged attributes, readonly, and the provider to ask."""
        if not attempt.spc_name:
            raise InvalidRequest(f"{SECRET_PROVIDER_CLASS} is not set in the volume attributes")
        namespace = attempt.identity.namespace
        if attempt.class_read is not None:
            spc = await self._check.get_read(attempt.class_read, namespace, attempt.spc_name)
        elif lookup is not None:
            spc = await lookup
        else:
            spc = await self._ports.spcs.get(attempt.identity.namespace, attempt.spc_name)
        check_class(spc)
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
        """The provider's answer: the prefetched one when the class is still the one it was
        asked with (equal: a re-read or an informer update may rebuild it unchanged), else a
        fresh call."""
        prefetched, attempt.prefetched = attempt.prefetched, None
        if prefetched is not None and prefetched.spc == attempt.spc:
            if prefetched.error is not None:
                raise prefetched.error
            assert prefetched.result is not None
            return prefetched.result
        return await self._ask(provider, attempt.provider, attempt.attributes, attempt)

    async def _ask(
        self, provider: Provider, name: str, attributes: dict[str, str], attempt: Attempt
    ) -> MountResult:
        request = ProviderRequest(
            attributes=attributes,
            secrets=attempt.request.secrets,
            identity=attempt.identity,
            target_path=attempt.request.target_path,
        )
        return await fetch_content(provider, name, request, self._settings.provider_timeout)

    async def _store(
        self, attempt: Attempt, result: MountResult, still_first: Callable[[], bool] | None = None
    ) -> bool:
        """Mount if still needed, write the files, record them (one worker-thread hop when the
        volume stack allows); ``attempt.files_changed`` tells whether the visible content
        changed. True when stored.

        ``still_first`` (a first publish's check, ``_still_first``) runs first in that
        hop and mounts itself; when it returns False nothing is done and this returns False.
        """
        mount = None
        if still_first is not None:
            mount = self._blocking_mounter
        elif not (attempt.is_remount or attempt.mounted_here):
            mount = self._content.joins_mount(self._ports.mounter)
            if mount is None:
                await self._mount(attempt)
            attempt.mounted_here = True  # before the hop starts: from here an undo unmounts
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
        # Before the saves start: an undo may release the status only if this volume owns it.
        attempt.status_written = self._content.statuses.may_write(record)

        def written(changed: bool) -> None:
            attempt.files_changed = changed

        if not await self._content.store(record, result.files, written, mount, still_first):
            attempt.status_written = False
            return False
        # A first mount, an adoption (first recorded by this agent: its Secrets may never have
        # been synced) or changed content; in the background: kubelet never waits on Secrets.
        jobs, spc = self._ports.secret_sync, attempt.spc
        first = not attempt.is_remount or attempt.adopting
        if jobs is not None and spc is not None and (attempt.files_changed or first):
            jobs.written(record, spc)
        return True

    def _mask_remount_failure(self, attempt: Attempt, err: Exception) -> PublishOutcome:
        # Only an unrecorded volume is remounted here (adopted, or someone else's content with
        # rotation on): it stays unrecorded, so kubelet's next republish tries again.
        reason = err.reason if isinstance(err, AgentError) else "FailedToMount"
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
        key = pod_status_key(pod, attempt.spc_name)
        # Each step on its own: a failed unmount must not keep a "mounted: true" status around.
        steps: list[Callable[[], Awaitable[None]]] = [lambda: self._ports.mounter.unmount(target)]
        if attempt.status_written:  # never another volume's status
            steps.append(lambda: self._content.statuses.release(key))
        for step in steps:
            try:
                await step()
            except AgentError as err:
                log.error("node_publish.cleanup_failed", target_path=target, error=err.message)


def _stopped_in_the_check(attempt: Attempt) -> bool:
    """The first publish's hop failed, or was cancelled, in its mount-point check (before its
    mount): the step-by-step path would have stopped there too, before the class lookup."""
    return attempt.first_check and not attempt.mounted_here


def _forget_class(attempt: Attempt) -> None:
    """Back to what the step-by-step path knows before its class lookup: a failed, cancelled
    or declined check is reported (metric label, log line, pod event) naming no provider, as
    upstream's mount-point errors are."""
    attempt.provider, attempt.spc, attempt.attributes = "", None, {}


def _files_only(provider: Provider) -> bool:
    """The provider returns every file and never writes into the target (``ports.Provider``):
    it is asked before the mount, which then joins the hop that writes its files."""
    return getattr(provider, "files_only", False) is True


async def _discard(lookup: asyncio.Future[SecretProviderClass] | None) -> None:
    """Drop an early lookup the publish no longer needs; it is a read, but its worker thread
    finishes before the publish returns (no work outlives the call that started it)."""
    if lookup is None:
        return
    lookup.cancel()
    await finish_despite_cancellation(lookup)
