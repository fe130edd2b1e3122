"""NodePublishVolume as a short pipeline of named steps.

Order follows upstream (reference §3.5): request validation, pod info, a new volume's pod status
name length, mount-point check (a republish of a known volume returns fast), class lookup in the
pod's namespace, parameter merge (volume attributes win), readonly, tmpfs mount, provider fetch,
atomic write, mount-table record, pod status. A republish of a known volume only refreshes its
tokens (the rotation scheduler, ``agent.rotation``, fetches when it is due). A failed first
publish unmounts what it mounted; a failed refetch of a volume already mounted but unrecorded
(adopted after a restart) is masked so kubelet never tears down a working volume (k/k#121271).

A first publish whose class the source holds without I/O is tried first with one worker-thread
hop fewer (``agent.core.first_publish``); when it cannot be, or its check finds the target in
use or the class changed, the step-by-step path below runs. The steps both share (mount, ask,
store, undo) are in ``agent.core.publish_steps``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog

from agent.aio.locks import KeyedLock
from agent.aio.threads import finish_despite_cancellation
from agent.core.first_publish import FirstPublish
from agent.core.mount_table import MountTable
from agent.core.pod_info import read_pod_identity
from agent.core.publish_attempt import Attempt, PublishOutcome
from agent.core.publish_check import CheckFirst, PublishCheck
from agent.core.publish_report import PublishReport, owner_can_fix
from agent.core.publish_request import (
    check_class,
    check_pod_directory,
    check_republish,
    check_request,
    check_status_name,
    context_of,
    merge_attributes,
    mount_group_of,
)
from agent.core.publish_steps import PublishPorts, PublishSettings, PublishSteps, files_only
from agent.core.recovery import adopt_volume
from agent.errors import AgentError, InvalidRequest, safe_message
from agent.model import (
    SECRET_PROVIDER_CLASS,
    MountResult,
    PublishRequest,
    SecretProviderClass,
    VolumeContent,
    VolumeRecord,
    VolumeState,
)
from agent.ports import Provider

__all__ = ["PublishOutcome", "PublishPorts", "PublishSettings", "PublishVolume"]

log = structlog.get_logger("agent.publish")


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
        self._republished = republished
        self._report = PublishReport(ports.observer, ports.events)
        self._steps = PublishSteps(ports, settings, table, clock)
        self._check = PublishCheck(ports.mounter, ports.spcs)
        self._check_first = CheckFirst()
        self._first_publish = FirstPublish(self._steps, self._check, self._check_first)

    async def __call__(self, request: PublishRequest) -> PublishOutcome:
        started = time.perf_counter()
        attempt: Attempt | None = None
        try:
            request, target = check_request(request, self._settings.targets)
            identity = read_pod_identity(request.volume_context, request.secrets)
            check_pod_directory(identity, target)
            attempt = Attempt(
                request=request,
                identity=identity,
                spc_name=request.volume_context.get(SECRET_PROVIDER_CLASS, ""),
                mount_group=mount_group_of(request),
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
        if self._table.get(attempt.request.target_path) is None:  # else: check_republish
            check_status_name(attempt.identity, attempt.spc_name)
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
            if not files_only(provider):
                await self._steps.mount(attempt)  # the provider may write into the target itself
            result = await self._fetch(attempt, provider)
            await self._steps.store(attempt, result)
        except asyncio.CancelledError:
            # Still under the target's lock: kubelet's retry must not overlap the undo.
            await finish_despite_cancellation(asyncio.ensure_future(self._steps.undo(attempt)))
            raise
        except Exception as err:
            if attempt.is_remount:
                return self._mask_remount_failure(attempt, err)
            await self._steps.undo(attempt)
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
        check_republish(record, attempt.identity, attempt.spc_name)
        # Kubelet sends fresh tokens on each republish; keep them for later rotations.
        record.pod = attempt.identity
        record.context = context_of(attempt.request)
        # The fsGroup of a volume adopted without it: the next rotation writes the files in it.
        record.mount_group = attempt.mount_group
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
        return await self._steps.ask(provider, attempt)

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


async def _discard(lookup: asyncio.Future[SecretProviderClass] | None) -> None:
    """Drop an early lookup the publish no longer needs; it is a read, but its worker thread
    finishes before the publish returns (no work outlives the call that started it)."""
    if lookup is None:
        return
    lookup.cancel()
    await finish_despite_cancellation(lookup)
