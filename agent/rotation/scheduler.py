"""The rotation loop: plan, dispatch groups (bounded concurrency), sleep until the next due
time or until something changes (a volume recorded or republished, a class or pod edited,
a group finished).

The loop never waits for the groups it starts: a slow provider holds only its own groups
(and at most ``concurrency`` fetch slots), never the schedule. ``rotate_due`` runs one pass and
waits for it (tests, benchmarks); ``settle`` waits until the running loop has nothing due.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import structlog

from agent.aio.clock import Clock, SystemClock, sleep_until_woken
from agent.aio.locks import KeyedLock
from agent.aio.tasks import TaskSet
from agent.core.mount_table import MountTable
from agent.core.volume_content import VolumeContentStore
from agent.model import (
    ROTATION_POLL_INTERVAL_ANNOTATION,
    PodInfo,
    SecretProviderClass,
    VolumeRecord,
)
from agent.ports import (
    PodEventSink,
    PodStatusStore,
    ProviderLookup,
    RotationObserver,
    SecretProviderClassSource,
    ServiceAccountTokenMinter,
)
from agent.ports_sync import SecretSync
from agent.ports_volumes import PayloadWriter, VolumeMetadataStore
from agent.rotation.notices import IntervalNotices
from agent.rotation.plan import Group, Plan, Planner
from agent.rotation.policy import RotationSettings, refresh_requested
from agent.rotation.report import RotationReport
from agent.rotation.rotate import GroupRotator
from agent.rotation.schedule import Schedule
from agent.rotation.throttle import ProviderThrottle

log = structlog.get_logger("agent.rotation")

RETRY_AFTER_BUG_S = 30.0


@dataclass(slots=True)
class RotationPorts:
    spcs: SecretProviderClassSource
    providers: ProviderLookup
    writer: PayloadWriter
    metadata: VolumeMetadataStore
    statuses: PodStatusStore
    observer: RotationObserver
    # Kubernetes mode: the classes' secretObjects are re-synced after a rotation that changed
    # content (standalone mode has no Secrets).
    sync: SecretSync | None = None
    events: PodEventSink | None = None
    minter: ServiceAccountTokenMinter | None = None


class RotationScheduler:
    """Implements ``ports.ChangeListener``; ``republished`` is publish's hook."""

    def __init__(
        self,
        ports: RotationPorts,
        settings: RotationSettings,
        table: MountTable,
        locks: KeyedLock,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._settings, self._table = settings, table
        self._clock = clock or SystemClock()
        self._observer = ports.observer
        rng = rng or random.Random()  # noqa: S311 (jitter, not secrets)
        self.schedule = Schedule(settings, rng)
        self.throttle = ProviderThrottle(
            settings.throttle_backoff, ports.observer.provider_backoff, rng
        )
        self._notices = IntervalNotices(settings, ports.events)
        self._planner = Planner(self.schedule, self.throttle, ports.spcs, self._notices)
        self._report = RotationReport(ports.observer, ports.events)
        content = VolumeContentStore(
            ports.writer, ports.metadata, ports.statuses, table, settings.node_name
        )
        self._rotator = GroupRotator(
            providers=ports.providers,
            content=content,
            sync=ports.sync,
            minter=ports.minter,
            table=table,
            locks=locks,
            schedule=self.schedule,
            throttle=self.throttle,
            report=self._report,
            clock=self._clock,
            provider_timeout=settings.provider_timeout,
            per_pod_providers=self._planner.per_pod_providers,
        )
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._passing = asyncio.Lock()
        self._busy: set[str] = set()  # target paths of groups in flight
        self._groups = TaskSet("rotation")
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        table.subscribe(lambda record: self._poke())

    # ---- what wakes the loop ----

    def republished(self, record: VolumeRecord) -> None:
        """Kubelet republished ``record`` (fresh tokens and context): a volume waiting for
        its context, or overdue, can go now."""
        if self.schedule.due_at(record) <= self._clock.now():
            self._poke()

    def class_changed(self, old: SecretProviderClass | None, new: SecretProviderClass) -> None:
        interval_changed = self.schedule.learn_class(new)
        if ROTATION_POLL_INTERVAL_ANNOTATION in new.annotations:
            self._notices.check(new, [record.pod for record in self._volumes_of_class(new)])
        requested = 0
        if refresh_requested(old.annotations if old else None, new.annotations):
            requested = self._request_now(self._volumes_of_class(new))
            log.info(
                "rotation.refresh_requested",
                spc=new.name,
                namespace=new.namespace,
                volumes=requested,
            )
        if interval_changed or requested:
            self._poke()

    def _volumes_of_class(self, spc: SecretProviderClass) -> Iterator[VolumeRecord]:
        for record in self._table:
            if record.pod.namespace == spc.namespace and record.spc_name == spc.name:
                yield record

    def pod_changed(self, old: PodInfo | None, new: PodInfo) -> None:
        if not refresh_requested(old.annotations if old else None, new.annotations):
            return
        requested = self._request_now(self._table.of_pod(new.uid))
        log.info(
            "rotation.refresh_requested", pod=new.name, namespace=new.namespace, volumes=requested
        )
        if requested:
            self._poke()

    def _request_now(self, volumes: Iterable[VolumeRecord]) -> int:
        now, count = self._clock.now(), 0
        for record in volumes:
            self.schedule.request_now(record, now)
            count += 1
        return count

    def _poke(self) -> None:
        self._idle.clear()
        self._wake.set()

    # ---- the loop ----

    async def run(self) -> None:
        """Until cancelled; running groups are cancelled with it (``close``)."""
        while True:
            self._wake.clear()
            try:
                next_at, _ = await self._pass()
            except Exception as err:  # a bug must not end rotation for the node
                log.error("rotation.pass_failed", error_type=type(err).__name__, error=str(err))
                next_at = self._clock.now() + min(self._settings.interval, RETRY_AFTER_BUG_S)
            if not self._busy and not self._wake.is_set():
                self._idle.set()
            await sleep_until_woken(self._clock, next_at, self._wake)

    async def rotate_due(self) -> int:
        """One pass, waiting for the groups it started; returns how many it started."""
        _, groups = await self._pass()
        await asyncio.gather(*groups)
        return len(groups)

    async def settle(self) -> None:
        """Until the running loop finds nothing due and no group running (tests)."""
        self._poke()
        await self._idle.wait()

    async def close(self) -> None:
        await self._groups.close()

    async def _pass(self) -> tuple[float | None, list[asyncio.Future[None]]]:
        async with self._passing:  # one planner at a time, so no group starts twice
            now = self._clock.now()
            self.schedule.prune(record.target_path for record in self._table)
            self._notices.prune(record.pod.uid for record in self._table)
            plan = await self._planner.plan(self._table, self._busy, now)
            self._observer.volumes_due(plan.due)
            self._report_class_failures(plan, now)
            return plan.next_at, [self._dispatch(group) for group in plan.groups]

    def _report_class_failures(self, plan: Plan, now: float) -> None:
        for failure in plan.failures:
            for record in failure.due:
                retry_at = self.schedule.failed(record, now)
                self._report.failed(record, failure.error, retry_at, now)
                plan.wake_at(retry_at)

    def _dispatch(self, group: Group) -> asyncio.Future[None]:
        targets = [member.target_path for member in group.members]
        self._busy.update(targets)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._groups.spawn(self._run_group(group, targets, done), group.spc.name)
        return done

    async def _run_group(
        self, group: Group, targets: list[str], done: asyncio.Future[None]
    ) -> None:
        try:
            async with self._slots:
                fetched = await self._rotator.fetch(group)
            if fetched is not None:
                await self._rotator.apply(group, fetched)
        finally:
            self._busy.difference_update(targets)
            if not done.done():
                done.set_result(None)
            self._poke()
