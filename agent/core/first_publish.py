"""A first publish whose class the source holds without I/O, with one worker-thread hop fewer.

The step-by-step path (``agent.core.publish``) checks the mount point (and, standalone, re-reads
the manifests) in a hop of its own before it asks the provider, since the provider's request is
built from the class that re-read returns. Kubelet calls between pod starts, and every hop of a
paced publish pays a thread wake-up, so when the class is already held without I/O
(``ports.CachedClassSource``) the check runs at the start of the hop that mounts instead
(``PublishCheck.still_first_blocking``). What the check finds decides as on the step-by-step
path; errors keep upstream's order (the check's before the class's and the provider's); one
publish never asks its provider twice; a target the check refused or left alone is checked
first on kubelet's later calls (``CheckFirst``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from agent.aio.threads import finish_despite_cancellation, run_blocking
from agent.core.publish_attempt import Attempt, Prefetched, PublishOutcome
from agent.core.publish_check import CheckFirst, PublishCheck
from agent.core.publish_request import check_class, merge_attributes
from agent.core.publish_steps import PublishSteps, files_only
from agent.model import MountResult, SecretProviderClass
from agent.ports import Provider


class FirstPublish:
    def __init__(self, steps: PublishSteps, check: PublishCheck, check_first: CheckFirst) -> None:
        self._steps = steps
        self._check = check
        self._check_first = check_first

    async def __call__(self, attempt: Attempt) -> PublishOutcome | None:
        """The publish done, or None: not eligible, or the hop found the target mounted
        already or the class changed (nothing was done; the step-by-step path runs).

        For a target the mount table does not know (after the restart scan: a first publish)
        and the check never refused or found someone else's (``CheckFirst``), a readonly
        request and a class that passes ``check_class``, the mount-point check and
        the class re-read run at the start of the hop that mounts
        (``PublishCheck.still_first_blocking``) instead of in a hop of their own. A provider
        that returns every file is asked first, and that one hop also writes and records
        (``_ask_then_store``); any other (an upstream plugin may write into the target itself)
        is asked once that hop mounted (``_mount_then_ask``).
        """
        provider = await self._provider_if_eligible(attempt)
        if provider is None:
            return None
        result = await self._publish_or_undo(attempt, provider)
        if result is None:
            _forget_class(attempt)
            return None
        return PublishOutcome(attempt.provider, "mounted", len(result.files))

    async def _provider_if_eligible(self, attempt: Attempt) -> Provider | None:
        """The class's provider when this publish may take the one-hop path, ``attempt`` then
        holding the class, its provider's name and the merged attributes; None (``attempt``
        untouched) when it may not."""
        request = attempt.request
        target = request.target_path
        known = self._steps.table.get(target) is not None or target in self._check_first
        if (
            self._steps.blocking_mounter is None
            or known
            or not (attempt.spc_name and request.readonly)
        ):
            return None
        spc = self._check.cached(attempt.identity.namespace, attempt.spc_name)
        provider = await self._provider_for(spc) if spc is not None else None
        if spc is None or provider is None:
            return None
        attempt.provider, attempt.spc = spc.provider, spc
        attempt.attributes = merge_attributes(spc.parameters, request)
        return provider

    async def _publish_or_undo(self, attempt: Attempt, provider: Provider) -> MountResult | None:
        """Ask and store as ``provider``'s kind needs, then install the hop's class re-read;
        on a failure or a cancellation, undo what was done (and forget the class, and on a
        failure check the target first from then on, when it stopped in the check)."""
        target = attempt.request.target_path
        ask_and_store = self._ask_then_store if files_only(provider) else self._mount_then_ask
        try:
            result = await ask_and_store(attempt, provider)
            if attempt.class_read is not None:
                self._check.install(attempt.class_read)
                attempt.class_read = None
        except asyncio.CancelledError:
            if _stopped_in_the_check(attempt):
                _forget_class(attempt)
            # Still under the target's lock: kubelet's retry must not overlap the undo.
            await finish_despite_cancellation(asyncio.ensure_future(self._steps.undo(attempt)))
            raise
        except Exception:
            if _stopped_in_the_check(attempt):  # refused: kubelet retries it, with backoff
                _forget_class(attempt)
                self._check_first.add(target)
            await self._steps.undo(attempt)
            raise
        return result

    async def _provider_for(self, spc: SecretProviderClass) -> Provider | None:
        """``spc``'s provider when the class passes ``check_class``; None otherwise (the
        step-by-step path reports why, in upstream's order: also a factory's own error, an
        entry point's bug or a missing dependency, after the mount-point check)."""
        try:
            check_class(spc)
            return await self._steps.ports.providers.load(spc.provider)
        except Exception:
            return None

    async def _ask_then_store(self, attempt: Attempt, provider: Provider) -> MountResult | None:
        """Ask the provider, then check, mount, write and record in one hop. A provider error is
        kept (``attempt.prefetched``), not raised: the step-by-step path raises it after the
        check when the class is still the one asked with, so one publish never asks twice."""
        assert attempt.spc is not None
        try:
            result = await self._steps.ask(provider, attempt)
        except Exception as err:
            attempt.prefetched = Prefetched(attempt.spc, error=err)
            return None
        attempt.prefetched = Prefetched(attempt.spc, result=result)
        stored = await self._steps.store(attempt, result, self._still_first(attempt))
        return result if stored else None

    async def _mount_then_ask(self, attempt: Attempt, provider: Provider) -> MountResult | None:
        """Check and mount in one hop, then ask the provider and store in a second."""
        mounter, still_first = self._steps.blocking_mounter, self._still_first(attempt)
        assert mounter is not None
        target = attempt.request.target_path

        def check_and_mount() -> bool:
            if not still_first():
                return False
            mounter.mount_blocking(target)
            return True

        if not await run_blocking(check_and_mount):
            return None
        result = await self._steps.ask(provider, attempt)
        await self._steps.store(attempt, result)
        return result

    def _still_first(self, attempt: Attempt) -> Callable[[], bool]:
        """The check at the start of a first publish's hop, for its worker thread: True when the
        target is still new and the class unchanged. It then marks the mount as this call's
        before the mount starts: from there a failure or cancellation unmounts."""
        spc, target = attempt.spc, attempt.request.target_path
        assert spc is not None
        attempt.first_check = True

        def still_first() -> bool:
            holds, attempt.class_read = self._check.still_first_blocking(target, spc)
            if not holds:
                return False
            attempt.mounted_here = True
            return True

        return still_first


def _stopped_in_the_check(attempt: Attempt) -> bool:
    """The first publish's hop failed, or was cancelled, in its mount-point check (before its
    mount): the step-by-step path would have stopped there too, before the class lookup."""
    return attempt.first_check and not attempt.mounted_here


def _forget_class(attempt: Attempt) -> None:
    """Back to what the step-by-step path knows before its class lookup: a failed, cancelled
    or declined check is reported (metric label, log line, pod event) naming no provider, as
    upstream's mount-point errors are."""
    attempt.provider, attempt.spc, attempt.attributes = "", None, {}
