"""Sync as Kubernetes Secret: implements ``ports_sync.SecretSync`` (upstream §7, with the owner
semantics of ``owners``).

For one volume: parse the class's ``secretObjects`` (a broken entry is a Warning event
naming its field; the others go on), write every Secret from the mounted files with this
consumer's owner references (``writing``: its pod's owners, or its status object for a bare
pod), and let go of Secrets the class no longer names (``letting_go``). What each volume's
consumer may hold is noted before anything can make its sync return early (``held`` says
why). Work on one Secret is serialized in this process (two volumes of a node never race
each other); other nodes are handled by the optimistic concurrency in ``apply`` and
``release``. Nothing raises to the caller: failures are reported (``reporting``), and the
next re-sync tries again; ``failing`` holds the volumes whose last sync hit a failure worth
retrying sooner (API or file errors, not a broken entry). A volume whose status object is not
written yet is synced once it is (``status_waits``). Both are handed to ``follow_ups`` (the
re-sync loop), so neither waits for the next full pass. A volume whose class names no Secret
and that holds none is done at once: no status wait, no API call, nothing logged.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from agent.aio.locks import KeyedLock
from agent.core.mount_table import MountTable
from agent.errors import AgentError
from agent.model import (
    OwnerReference,
    PodInfo,
    SecretProviderClass,
    VolumeRecord,
)
from agent.ports import CachedClassSource, PodEventSink, PodLookup, SecretProviderClassSource
from agent.ports_sync import SecretConsumers, SecretStore, SecretSyncObserver
from agent.ports_volumes import VolumeFileReader
from agent.sync.held import Held, HeldSecrets
from agent.sync.holders import Holders
from agent.sync.letting_go import LettingGo
from agent.sync.owners import consumer_owners
from agent.sync.passes import FollowUps, SyncOutcome
from agent.sync.release import SecretRelease
from agent.sync.reporting import FAILED_TO_CREATE, SyncReporter
from agent.sync.spec import parse_secret_objects
from agent.sync.status_waits import StatusWaits
from agent.sync.writing import SecretWriter

log = structlog.get_logger("agent.sync")

Owners = tuple[OwnerReference, ...]


class SecretSyncer:
    def __init__(
        self,
        store: SecretStore,
        table: MountTable,
        consumers: SecretConsumers,
        classes: SecretProviderClassSource,
        read_files: VolumeFileReader,
        *,
        events: PodEventSink | None = None,
        observer: SecretSyncObserver | None = None,
        pods: PodLookup | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._table = table
        self._consumers = consumers
        self._cached = classes.cached if isinstance(classes, CachedClassSource) else None
        self._report = SyncReporter(events, observer)
        self.pods = pods  # set once the pod informer exists (it is built after the syncer)
        self._held = HeldSecrets(store, clock)
        self._volume_locks = KeyedLock()
        secret_locks = KeyedLock()
        self._writer = SecretWriter(store, table, read_files, self._report, secret_locks)
        release = SecretRelease(store, Holders(consumers, classes))
        self._letting_go = LettingGo(
            release, self._held, self._report, secret_locks, self._retry_wanted
        )
        self.failing: set[str] = set()
        self.follow_ups: FollowUps | None = None  # set by the re-sync loop
        self._statuses = StatusWaits(consumers, self._status_ready)

    # ---- ports_sync.SecretSync ----

    async def volume_written(self, record: VolumeRecord, spc: SecretProviderClass) -> None:
        await self.sync_volume(record, spc)

    async def sync_volume(self, record: VolumeRecord, spc: SecretProviderClass) -> SyncOutcome:
        """``volume_written``, saying what it did (the re-sync pass counts it)."""
        target = record.target_path
        parsed = parse_secret_objects(spc.secret_objects)
        if self._mounted(record):  # before any wait: a census may count it from now on
            self._held.note(record, parsed.named, self._cached_owners(record))
        async with self._volume_locks.hold(target):
            if not self._mounted(record):
                return SyncOutcome.NOT_SYNCED
            if self._nothing_to_sync(record, spc):
                return SyncOutcome.SKIPPED
            pod = await self._live_pod(record)
            if pod is None:
                return SyncOutcome.NOT_SYNCED
            owners = await self._statuses.owners(record, pod)
            if owners is None or not self._mounted(record):
                return SyncOutcome.NOT_SYNCED  # once its status is written; or unpublished
            if not owners:
                log.info("secret_sync.pod_status_missing", pod=pod.name, spc=record.spc_name)
                self._retry_soon(target)  # a bare pod's status (its owner) does not exist
                return SyncOutcome.NOT_SYNCED
            started = time.perf_counter()
            for problem in parsed.problems:
                self._report.failed(
                    record, FAILED_TO_CREATE, "InvalidSecretObject", problem.message
                )
            synced, retry = await self._writer.write(record, parsed.specs, owners)
            retry |= await self._let_go(record, parsed.named, owners)
            if retry:
                self._retry_soon(target)
            else:
                self.failing.discard(target)
            if parsed.specs:
                self._report.synced(record, synced, time.perf_counter() - started)
            return SyncOutcome.SYNCED

    async def volume_removed(self, record: VolumeRecord) -> None:
        target = record.target_path
        async with self._volume_locks.hold(target):
            self.failing.discard(target)
            self._statuses.forget(target)
            held = self._held.forget(record)
            await self._leave(record, held, self._cached_owners(record))

    # ---- the re-sync loop's ----

    def class_changed(self, namespace: str, name: str) -> None:
        """A class's ``secretObjects`` changed (or it was deleted): its volumes may hold what
        it names now from this moment (a census counts them), before their syncs run."""
        spc = self._cached(namespace, name) if self._cached else None
        if spc is None:
            return  # deleted (names nothing), or not cached: nothing new to note
        named = parse_secret_objects(spc.secret_objects).named
        for record in self._table:
            if record.pod.namespace == namespace and record.spc_name == name:
                self._held.note(record, named, self._cached_owners(record))

    @property
    def retrying(self) -> bool:
        """Volumes whose last sync failed, or removed volumes whose release failed."""
        return bool(self.failing or self._letting_go.leftovers)

    async def retry_removed(self) -> None:
        """Try removed volumes' failed releases again."""
        for target in list(self._letting_go.leftovers):
            async with self._volume_locks.hold(target):
                leftover = self._letting_go.leftovers.pop(target, None)
                if leftover is not None:
                    await self._leave(leftover.record, leftover.held, leftover.owners)

    # ---- one volume ----

    def _nothing_to_sync(self, record: VolumeRecord, spc: SecretProviderClass) -> bool:
        """True when the volume's class names no Secret and it holds none (upstream §7 step
        2: no ``secretObjects``, done): no status wait, no API call, no log line, no retry.
        Recorded as holding nothing, so its unpublish asks the API nothing either. A volume
        that may still hold Secrets (its class named them, or a sibling handed them over)
        goes on, to let go of them; a class that gains ``secretObjects`` is synced by the
        pass its change starts."""
        target = record.target_path
        if spc.secret_objects or self._held.get(record).names:
            return False
        self._held.holds_nothing(record)
        self.failing.discard(target)  # what failed was for Secrets no longer named
        self._statuses.forget(target)  # no sync either when a status it waited for lands
        return True

    def _named_now(self, record: VolumeRecord) -> frozenset[str]:
        """What the volume's class, as cached now (no API call), names; nothing when the
        cache lacks it."""
        spc = self._cached(record.pod.namespace, record.spc_name) if self._cached else None
        return parse_secret_objects(spc.secret_objects).named if spc else frozenset()

    def _class_names_nothing(self, record: VolumeRecord) -> bool:
        """The volume's class as cached now (no API call) names no Secret. For a volume
        mounted before this process started that noted nothing since, this is what its sync
        would record (``_nothing_to_sync``), so its unpublish needs no list of the namespace's
        Secrets. A class the cache lacks (deleted, or not seen yet) proves nothing."""
        spc = self._cached(record.pod.namespace, record.spc_name) if self._cached else None
        return spc is not None and not spc.secret_objects

    async def _live_pod(self, record: VolumeRecord) -> PodInfo | None:
        """The volume's pod if the volume is still mounted for it and it still runs (upstream
        skips a terminating or finished pod too): a Secret is never (re)created for a pod
        that is going away. None also when the pod cannot be read now (retried sooner)."""
        if not self._mounted(record):
            return None
        pod: PodInfo | None = None
        try:
            if self.pods is not None:
                pod = await self.pods.get(record.pod.namespace, record.pod.name)
        except AgentError as err:
            log.info("secret_sync.pod_unknown", pod=record.pod.name, error=err.message)
            self._retry_soon(record.target_path)
            return None
        if pod is None or pod.uid != record.pod.uid or pod.terminating or pod.finished:
            return None
        return pod

    def _mounted(self, record: VolumeRecord) -> bool:
        current = self._table.get(record.target_path)
        return current is not None and current.pod.uid == record.pod.uid

    def _retry_soon(self, target: str) -> None:
        self.failing.add(target)
        self._retry_wanted()

    def _retry_wanted(self) -> None:
        if self.follow_ups is not None:
            self.follow_ups.retry_wanted()

    def _status_ready(self, target: str) -> None:
        if self.follow_ups is not None:
            self.follow_ups.volume_ready(target)

    async def _leave(self, record: VolumeRecord, held: Held, owners: Owners) -> None:
        """A removed volume lets go of what it may hold, unless its consumer (its pod and
        class) still mounts, or mounts again, a volume, which then takes it over."""
        sibling = self._consumer_mounted(record)
        if sibling is not None:
            self._hand_over(held, sibling)
        elif held.known or held.names or not self._class_names_nothing(record):
            await self._letting_go.leave(record, held, owners)
        # else: what its sync would record (``_nothing_to_sync``): nothing, no API call

    def _consumer_mounted(self, record: VolumeRecord) -> VolumeRecord | None:
        """A volume of ``record``'s pod and class in the table (another one, or this one
        published again: the removed one has left it)."""
        for other in self._table:
            if other.pod.uid == record.pod.uid and other.spc_name == record.spc_name:
                return other
        return None

    def _hand_over(self, held: Held, sibling: VolumeRecord) -> None:
        """``sibling`` inherits what a removed volume of its consumer may hold; its next sync
        (sooner, if that adds anything) lets go of what the class no longer names."""
        before = self._held.get(sibling)
        if not (held.names <= before.names and held.owned <= before.owned) or not held.known:
            self._held.add(sibling, held)
            self._retry_soon(sibling.target_path)

    def _cached_owners(self, record: VolumeRecord) -> Owners:
        """The references the volume's pod, as cached now, adds (none for a bare pod, whose
        status object comes with its sync; none when not cached)."""
        pod = self._consumers.cached_pod(record.pod.namespace, record.pod.name)
        if pod is None or pod.uid != record.pod.uid:
            return ()
        return consumer_owners(pod, None)

    async def _let_go(self, record: VolumeRecord, named: frozenset[str], owners: Owners) -> bool:
        """Let go of what this consumer may hold that the class no longer names (``named``,
        from the class this sync works from, nor the class as cached now: a newer version may
        name a Secret again); keep what failed for the retry. True when something failed
        (retry sooner)."""
        held = self._held.note(record, named, owners)
        if not held.known:
            # Mounted before this process started: what it held then is read from the API.
            recovered = await self._held.recover(record, owners)
            if recovered is None:
                return True
            held = self._held.recovered(record, recovered)
        gone = held.names - named
        if gone:
            gone -= self._named_now(record)
        if not gone:
            return False
        released = await self._letting_go.release(record, gone, held.owned, "no_longer_named")
        self._held.let_go(record, released)
        return released != gone
