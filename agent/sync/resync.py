"""Periodic re-sync: every mounted volume's Secrets are checked again against its files.

Upstream requeues each pod status 5 minutes after a successful sync (§7 step 9), which is
what recreates a Secret deleted by hand and adds a missing owner reference; a failed sync is
retried sooner (upstream: 5 to 10 s). Here one loop does both for the whole mount table: a
pass every ``interval``, and a pass over the volumes whose last sync failed after a growing
delay (``retry`` up to ``interval``), and a pass over a class's volumes as soon as its
``secretObjects`` change. The first pass runs at start, so a restarted agent catches up on
what changed while it was down. A class that no longer exists names no
Secrets: its volumes' Secrets are let go. ``trigger`` runs a pass now (tests; an operator's
refresh); ``run_once`` is one pass, awaited.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import structlog

from agent.aio.backoff import Backoff, BackoffPolicy
from agent.core.mount_table import MountTable
from agent.errors import AgentError, SecretProviderClassNotFound
from agent.model import SecretProviderClass, VolumeRecord
from agent.ports import SecretProviderClassSource
from agent.sync.syncer import SecretSyncer

log = structlog.get_logger("agent.sync")

DEFAULT_INTERVAL = 300.0  # upstream's RequeueAfter after a successful reconcile


class SecretResync:
    def __init__(
        self,
        table: MountTable,
        spcs: SecretProviderClassSource,
        syncer: SecretSyncer,
        *,
        interval: float = DEFAULT_INTERVAL,
        retry: BackoffPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._table = table
        self._spcs = spcs
        self._syncer = syncer
        self._interval = interval
        self._retry = Backoff(retry or BackoffPolicy(initial=5.0, maximum=interval))
        self._clock = clock
        self._wake = asyncio.Event()
        self._full_requested = False
        self._changed: set[tuple[str, str]] = set()
        self.passes = 0

    def trigger(self) -> None:
        """A full pass now."""
        self._full_requested = True
        self._wake.set()

    def class_changed(self, namespace: str, name: str) -> None:
        """A class's ``secretObjects`` changed, or it was deleted: re-sync its volumes now
        (upstream waits for its next requeue, pain point #389)."""
        self._changed.add((namespace, name))
        self._wake.set()

    async def run(self) -> None:
        next_full = self._clock()
        next_retry: float | None = None
        while True:
            await self._sleep_until(min(next_full, next_retry or next_full))
            full = self._full_requested or self._clock() >= next_full
            failed = False
            try:
                await self._pass(full)
            except Exception as err:  # a bug must not end re-syncing for good
                log.error("secret_resync.pass_failed", error_type=type(err).__name__)
                self._full_requested = failed = True  # a whole pass again, after the delay
            if full:
                next_full = self._clock() + self._interval
            if failed or self._syncer.failing:
                next_retry = self._clock() + self._retry.next_delay()
            else:
                next_retry = None
                self._retry.reset()

    async def _pass(self, full: bool) -> None:
        if full:
            self._full_requested = False
            self._changed.clear()
            await self.run_once()
        elif self._changed:
            changed, self._changed = self._changed, set()
            await self.run_once(classes=changed)
        else:
            await self.run_once(only_failing=True)

    async def _sleep_until(self, due: float) -> None:
        delay = due - self._clock()
        if delay > 0 and not self._wake.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
        self._wake.clear()

    async def run_once(
        self, *, only_failing: bool = False, classes: set[tuple[str, str]] | None = None
    ) -> int:
        """One pass (over every volume, those whose last sync failed, or those of the given
        classes); returns how many volumes it synced."""
        self.passes += 1
        synced = 0
        for record in self._table:
            if only_failing and record.target_path not in self._syncer.failing:
                continue
            if classes is not None and (record.pod.namespace, record.spc_name) not in classes:
                continue
            spc = await self._class_of(record)
            if spc is None:
                continue
            await self._syncer.volume_written(record, spc)
            synced += 1
        return synced

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
