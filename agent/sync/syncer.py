"""Sync as Kubernetes Secret: implements ``ports_sync.SecretSync`` (upstream §7, with the owner
semantics of ``owners``).

For one volume: parse the class's ``secretObjects`` (a broken entry is a Warning event
naming its field; the others go on), build every Secret's data from the mounted files in a
worker thread, then create or update each Secret with this consumer's owner references (its
pod's owners, or its status object for a bare pod), and let go of Secrets the class no longer
names. Work on one Secret is serialized in this process (two volumes of a node never race
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
from agent.aio.threads import run_blocking
from agent.core.mount_table import MountTable
from agent.errors import AgentError, InvalidRequest, KubernetesApiError
from agent.model import (
    OwnerReference,
    PodInfo,
    SecretObject,
    SecretProviderClass,
    VolumeRecord,
    pod_status_name,
)
from agent.ports import CachedClassSource, PodEventSink, PodLookup, SecretProviderClassSource
from agent.ports_sync import SecretConsumers, SecretStore, SecretSyncObserver
from agent.ports_volumes import VolumeFileReader
from agent.sync.apply import WriteFailed, ensure_secret, managed_labels
from agent.sync.data import BuiltData, read_volume_data
from agent.sync.held import HeldSecrets
from agent.sync.holders import Holders, Leaving
from agent.sync.passes import FollowUps, SyncOutcome
from agent.sync.release import SecretRelease
from agent.sync.reporting import FAILED_TO_CREATE, ROTATION_FAILED, SyncReporter
from agent.sync.spec import SecretSpec, parse_secret_objects
from agent.sync.status_waits import StatusWaits

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
        self._read_files = read_files
        self._store = store
        self._table = table
        self._consumers = consumers
        self._release_one = SecretRelease(store, Holders(consumers, classes))
        self._cached = classes.cached if isinstance(classes, CachedClassSource) else None
        self._report = SyncReporter(events, observer)
        self.pods = pods  # set once the pod informer exists (it is built after the syncer)
        self._started_at = clock()
        self._held = HeldSecrets(store, clock)
        self._volume_locks = KeyedLock()
        self._secret_locks = KeyedLock()
        self.failing: set[str] = set()
        self.follow_ups: FollowUps | None = None  # set by the re-sync loop
        self._statuses = StatusWaits(consumers, self._status_ready)

    # ---- ports_sync.SecretSync ----

    async def volume_written(self, record: VolumeRecord, spc: SecretProviderClass) -> None:
        await self.sync_volume(record, spc)

    async def sync_volume(self, record: VolumeRecord, spc: SecretProviderClass) -> SyncOutcome:
        """``volume_written``, saying what it did (the re-sync pass counts it)."""
        target = record.target_path
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
            parsed = parse_secret_objects(spc.secret_objects)
            for problem in parsed.problems:
                self._report.failed(
                    record, FAILED_TO_CREATE, "InvalidSecretObject", problem.message
                )
            synced, retry = await self._sync_specs(record, parsed.specs, owners)
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
            held = self._held.forget(target)
            if self._same_consumer_mounted(record):
                return  # the pod mounts the class in another volume: it still holds them all
            if held is None and self._class_names_nothing(record):
                return  # what its sync would have recorded (``_nothing_to_sync``): nothing
            if held is None:
                pod = self._consumers.cached_pod(record.pod.namespace, record.pod.name)
                known = pod.owners if pod is not None and pod.uid == record.pod.uid else ()
                held = await self._held.recover(record, known)
            for name in sorted(held.names):
                await self._release(record, name, held.owned, "volume_removed")

    # ---- one volume ----

    def _nothing_to_sync(self, record: VolumeRecord, spc: SecretProviderClass) -> bool:
        """True when the volume's class names no Secret and it holds none (upstream §7 step
        2: no ``secretObjects``, done): no status wait, no API call, no log line, no retry.
        Remembered as holding nothing, so its unpublish asks the API nothing either. A volume
        still holding Secrets its class stopped naming goes on, to let go of them; a class
        that gains ``secretObjects`` is synced by the pass its change starts."""
        target = record.target_path
        held = self._held.get(target)
        if spc.secret_objects or (held is not None and held.names):
            return False
        self._held.remember(record, frozenset(), ())
        self.failing.discard(target)  # what failed was for Secrets no longer named
        self._statuses.forget(target)  # no sync either when a status it waited for lands
        return True

    def _class_names_nothing(self, record: VolumeRecord) -> bool:
        """The volume's class as cached now (no API call) names no Secret. For a volume with
        nothing recorded (unpublished before its sync ran, or while that sync waited for its
        status) this is what the sync would have recorded, so its unpublish needs no list of
        the namespace's Secrets. A class the cache lacks (deleted, or not seen yet) proves
        nothing; one that names a Secret leaves the list to find what the volume's consumer
        may hold (a census counts it from the moment its status is written)."""
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
        if self.follow_ups is not None:
            self.follow_ups.retry_wanted()

    def _status_ready(self, target: str) -> None:
        if self.follow_ups is not None:
            self.follow_ups.volume_ready(target)

    def _same_consumer_mounted(self, record: VolumeRecord) -> bool:
        return any(
            other.pod.uid == record.pod.uid
            and other.spc_name == record.spc_name
            and other.target_path != record.target_path
            for other in self._table
        )

    async def _sync_specs(
        self, record: VolumeRecord, specs: tuple[SecretSpec, ...], owners: Owners
    ) -> tuple[int, bool]:
        """(Secrets now in sync, whether a failure is worth retrying sooner)."""
        if not specs:
            return 0, False
        try:
            built = await run_blocking(
                read_volume_data, record.target_path, specs, self._read_files
            )
        except (OSError, InvalidRequest) as err:
            if self._table.get(record.target_path) is None:
                return 0, False  # unpublished while it was being read
            why = err.message if isinstance(err, InvalidRequest) else err.strerror
            message = f"cannot read the mounted files of {record.target_path}: {why}"
            self._report.failed(record, FAILED_TO_CREATE, "FileReadError", message)
            return 0, True
        synced, retry = 0, False
        for item in built:
            if item.error:
                self._report.failed(record, FAILED_TO_CREATE, "InvalidSecretData", item.error)
                continue
            written = await self._ensure(record, item, owners)
            synced += written is True
            retry |= written is None
        return synced, retry

    async def _let_go(self, record: VolumeRecord, named: frozenset[str], owners: Owners) -> bool:
        """Release what this consumer holds that the class no longer names; remember the
        rest. True when a release failed (retry sooner)."""
        held = self._held.get(record.target_path)
        if held is None and record.mounted_at < self._started_at and named:
            # Mounted before this process started: what it held is unknown here. Asked only
            # when the class still names Secrets (the API is being written to anyway); a
            # class that dropped secretObjects while the agent was down lets go of its
            # Secrets when the pod goes.
            held = await self._held.recover(record, owners)
        self._held.remember(record, named, owners)
        if held is None:
            return False
        owned = held.owned | {ref.uid for ref in owners}
        results = [
            await self._release(record, name, owned, "no_longer_named")
            for name in sorted(held.names - named)
        ]
        return not all(results)

    # ---- one Secret ----

    async def _ensure(self, record: VolumeRecord, built: BuiltData, owners: Owners) -> bool | None:
        """True: in sync; False: refused for good (a user's Secret); None: failed, retry."""
        spec, pod = built.spec, record.pod
        wanted = SecretObject(
            namespace=pod.namespace,
            name=spec.secret_name,
            type=spec.type,
            data=built.data,
            labels=managed_labels(dict(spec.labels)),
            annotations=dict(spec.annotations),
        )
        async with self._secret_locks.hold(wanted.ref):
            try:
                outcome, before = await ensure_secret(self._store, wanted, owners, pod.uid)
            except WriteFailed as failed:
                reason = ROTATION_FAILED if failed.existed else FAILED_TO_CREATE
                message = f"secret {wanted.ref}: {failed.error.message}"
                self._report.failed(record, reason, failed.error.reason, message)
                return None
        return self._report.written(record, wanted, outcome, before)

    async def _release(
        self, record: VolumeRecord, name: str, owned: frozenset[str], why: str
    ) -> bool:
        pod = record.pod
        ref = f"{pod.namespace}/{name}"
        status = pod_status_name(pod.name, pod.namespace, record.spc_name)
        leaving = Leaving(pod.namespace, pod.uid, record.spc_name, status)
        async with self._secret_locks.hold(ref):
            try:
                outcome = await self._release_one.release(leaving, name, owned)
            except KubernetesApiError as err:
                log.warning("secret_sync.release_failed", secret_name=ref, error=err.message)
                return False
        self._report.released(record, name, outcome, why)
        return True
