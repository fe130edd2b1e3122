"""Periodic re-sync: every mounted volume's Secrets are checked again against its files.

Upstream requeues each pod status 5 minutes after a successful sync (§7 step 9), which is
what recreates a Secret deleted by hand and adds a missing owner reference; a failed sync is
retried sooner (upstream: 5 to 10 s). Here one loop does it all for the whole mount table:

- a pass every ``interval``; the first one at start, so a restarted agent catches up on what
  changed while it was down;
- a pass over the volumes whose last sync failed (``SecretSyncer.failing``), and the removed
  volumes whose release failed, after a growing delay (``retry``, up to ``interval``), armed
  as soon as one fails, in a pass or outside one (a publish's or a rotation's sync, an
  unpublish): no failure waits for the next full pass;
- a pass over a volume whose sync waited for its status object as soon as that is written
  (``SecretSyncer`` hands it over: ``volume_ready``);
- a pass over a class's volumes as soon as its ``secretObjects`` change (the syncer notes at
  once what they may hold from then on).

A class that no longer exists names no Secrets: its volumes' Secrets are let go. ``trigger``
runs a full pass now (tests; an operator's refresh); ``run_once`` is one full pass, awaited,
and says how many volumes it synced, skipped (nothing to sync) or could not sync now.
Time comes from a ``Clock``, so tests move it by hand.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from agent.aio.backoff import Backoff, BackoffPolicy
from agent.aio.clock import Clock, SystemClock, sleep_until_woken
from agent.core.mount_table import MountTable
from agent.errors import AgentError, SecretProviderClassNotFound
from agent.model import SecretProviderClass, VolumeRecord
from agent.ports import SecretProviderClassSource
from agent.sync.passes import PassCounts
from agent.sync.syncer import SecretSyncer

log = structlog.get_logger("agent.sync")

DEFAULT_INTERVAL = 300.0  # upstream's RequeueAfter after a successful reconcile


class SecretResync:
    """Implements ``passes.FollowUps`` for the syncer it is given."""

    def __init__(
        self,
        table: MountTable,
        spcs: SecretProviderClassSource,
        syncer: SecretSyncer,
        *,
        interval: float = DEFAULT_INTERVAL,
        retry: BackoffPolicy | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._table = table
        self._spcs = spcs
        self._syncer = syncer
        self._interval = interval
        self._retry = Backoff(retry or BackoffPolicy(initial=5.0, maximum=interval))
        self._clock = clock or SystemClock()
        self._wake = asyncio.Event()
        self._full_requested = False  # trigger(): a full pass now
        self._full_at_retry = False  # a pass broke: a full pass again, after the delay
        self._changed: set[tuple[str, str]] = set()
        self._ready: set[str] = set()
        self._next_full = 0.0
        self.retry_at: float | None = None  # when the failing volumes are tried again
        self.passes = 0
        self.full_passes = 0
        syncer.follow_ups = self

    def trigger(self) -> None:
        """A full pass now."""
        self._full_requested = True
        self._wake.set()

    def class_changed(self, namespace: str, name: str) -> None:
        """A class's ``secretObjects`` changed, or it was deleted: re-sync its volumes now
        (upstream waits for its next requeue, pain point #389)."""
        self._syncer.class_changed(namespace, name)
        self._changed.add((namespace, name))
        self._wake.set()

    def volume_ready(self, target: str) -> None:
        self._ready.add(target)
        self._wake.set()

    def retry_wanted(self) -> None:
        self._wake.set()  # the loop arms the retry when it wakes (``_arm_retry``)

    async def run(self) -> None:
        self._next_full = self._clock.now()
        while True:
            self._arm_retry()
            await self._sleep_until(min(self._next_full, self.retry_at or self._next_full))
            now = self._clock.now()
            retry = self.retry_at is not None and now >= self.retry_at
            full = self._full_requested or now >= self._next_full or (retry and self._full_at_retry)
            if not (full or retry or self._changed or self._ready):
                continue  # woken to arm the retry of a failure outside a pass
            if full or retry:
                self.retry_at = None  # this pass retries them; armed again if some still fail
            try:
                await self._pass(full, retry)
                if full:
                    self._full_at_retry = False
            except Exception as err:  # a bug must not end re-syncing for good
                log.error("secret_resync.pass_failed", error_type=type(err).__name__)
                self._full_at_retry = True
            if full:
                self._next_full = self._clock.now() + self._interval

    def _arm_retry(self) -> None:
        """A retry due after the backoff's next delay while volumes fail; none otherwise."""
        if not (self._syncer.retrying or self._full_at_retry):
            self.retry_at = None
            self._retry.reset()
        elif self.retry_at is None:
            self.retry_at = self._clock.now() + self._retry.next_delay()

    async def _pass(self, full: bool, retry: bool) -> None:
        if full:
            self._full_requested = False
            self._changed.clear()
            self._ready.clear()
            await self.run_once()
            return
        changed, self._changed = self._changed, set()
        ready, self._ready = self._ready, set()
        failing = self._syncer.failing if retry else set()
        await self._sync(
            lambda record: (
                record.target_path in failing
                or record.target_path in ready
                or (record.pod.namespace, record.spc_name) in changed
            )
        )
        if retry:
            await self._syncer.retry_removed()

    async def _sleep_until(self, due: float) -> None:
        if not self._wake.is_set():
            await sleep_until_woken(self._clock, due, self._wake)
        self._wake.clear()

    async def run_once(self) -> PassCounts:
        """One pass over every volume; what it did with them."""
        self.full_passes += 1
        counts = await self._sync(lambda _record: True)
        await self._syncer.retry_removed()
        return counts

    async def _sync(self, wanted: Callable[[VolumeRecord], bool]) -> PassCounts:
        self.passes += 1
        counts = PassCounts()
        # A class that names no Secret is read once per pass: a deleted one is not cached,
        # and asking the API again for each of its volumes would find nothing new.
        names_nothing: dict[tuple[str, str], SecretProviderClass] = {}
        for record in self._table:
            if not wanted(record):
                continue
            key = (record.pod.namespace, record.spc_name)
            spc = names_nothing.get(key) or await self._class_of(record)
            if spc is not None and not spc.secret_objects:
                names_nothing[key] = spc
            if spc is None:
                counts.class_unavailable += 1
                continue
            counts.add(await self._syncer.sync_volume(record, spc))
        return counts

    async def _class_of(self, record: VolumeRecord) -> SecretProviderClass | None:
        try:
            return await self._spcs.get(record.pod.namespace, record.spc_name)
        except SecretProviderClassNotFound:
            # Deleted: it names no Secret any more, so what its volumes synced is let go.
            return SecretProviderClass(
                record.spc_name, record.pod.namespace, record.provider, {}, ()
            )
        except AgentError as err:
            # Unreadable for now (API outage, a class edited into an invalid state): keep
            # the Secrets as they are rather than read a failure as "names nothing".
            log.info("secret_resync.class_unavailable", spc=record.spc_name, error=err.message)
            return None
