"""Sync as Kubernetes Secret: implements ``ports.SecretSync`` (upstream §7, with the owner
semantics of ``owners``).

For one volume: parse the class's ``secretObjects`` (a broken entry is a Warning event
naming its field; the others go on), build every Secret's data from the mounted files in a
worker thread, then create or update each Secret with this volume's pod among its owners,
and let go of Secrets the class no longer names. Work on one Secret is serialized in this
process (two volumes of a node never race each other); other nodes are handled by the
optimistic concurrency in ``apply``. Nothing raises to the caller: failures are reported
(``reporting``), and the next re-sync tries again; ``failing`` holds the volumes whose last
sync hit a failure worth retrying sooner (API or file errors, not a broken entry).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from agent.aio.locks import KeyedLock
from agent.aio.threads import run_blocking
from agent.core.mount_table import MountTable
from agent.errors import AgentError, KubernetesApiError
from agent.model import PodIdentity, SecretObject, SecretProviderClass, VolumeRecord
from agent.ports import PodEventSink, PodLookup, SecretStore, SecretSyncObserver
from agent.sync.apply import WriteFailed, ensure_secret, managed_labels, release_secret
from agent.sync.data import BuiltData, read_volume_data
from agent.sync.owners import consumer_reference
from agent.sync.reporting import FAILED_TO_CREATE, ROTATION_FAILED, SyncReporter
from agent.sync.spec import SecretSpec, parse_secret_objects

log = structlog.get_logger("agent.sync")

LIST_REUSE_S = 30.0


@dataclass(frozen=True, slots=True)
class _Held:
    """The Secrets one volume's pod holds a reference on (as far as this process knows)."""

    pod: PodIdentity
    names: frozenset[str]


class SecretSyncer:
    def __init__(
        self,
        store: SecretStore,
        table: MountTable,
        *,
        events: PodEventSink | None = None,
        observer: SecretSyncObserver | None = None,
        pods: PodLookup | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._table = table
        self._report = SyncReporter(events, observer)
        self.pods = pods  # set once the pod informer exists (it is built after the syncer)
        self._clock = clock
        self._started_at = clock()
        # namespace -> (when listed, [(secret name, consumer uids)]): managed Secrets, names only.
        self._listed: dict[str, tuple[float, list[tuple[str, frozenset[str]]]]] = {}
        self._volume_locks = KeyedLock()
        self._secret_locks = KeyedLock()
        self._held: dict[str, _Held] = {}
        self.failing: set[str] = set()

    # ---- ports.SecretSync ----

    async def volume_written(self, record: VolumeRecord, spc: SecretProviderClass) -> None:
        target = record.target_path
        async with self._volume_locks.hold(target):
            if not await self._still_mounted(record):
                return
            started = time.perf_counter()
            parsed = parse_secret_objects(spc.secret_objects)
            for problem in parsed.problems:
                self._report.failed(
                    record, FAILED_TO_CREATE, "InvalidSecretObject", problem.message
                )
            synced, retry = await self._sync_specs(record, parsed.specs)
            retry |= await self._let_go(record, parsed.named)
            if retry:
                self.failing.add(target)
            else:
                self.failing.discard(target)
            if parsed.specs:
                self._report.synced(record, synced, time.perf_counter() - started)

    async def volume_removed(self, record: VolumeRecord) -> None:
        target = record.target_path
        async with self._volume_locks.hold(target):
            self.failing.discard(target)
            held = self._held.pop(target, None)
            names = held.names if held is not None else await self._held_by_api(record.pod)
            for name in sorted(names):
                await self._release(record, name, "volume_removed")

    # ---- one volume ----

    async def _still_mounted(self, record: VolumeRecord) -> bool:
        """Sync only for a volume still mounted for a pod that still runs (upstream skips a
        terminating or finished pod too): a Secret is never (re)created for a pod that is
        going away."""
        current = self._table.get(record.target_path)
        if current is None or current.pod.uid != record.pod.uid:
            return False
        if self.pods is None:
            return True
        try:
            pod = await self.pods.get(record.pod.namespace, record.pod.name)
        except AgentError:
            return True  # the API is unsure; the volume is mounted, so sync
        if pod is None or pod.uid != record.pod.uid:
            return False
        return not (pod.terminating or pod.finished)

    async def _sync_specs(
        self, record: VolumeRecord, specs: tuple[SecretSpec, ...]
    ) -> tuple[int, bool]:
        """(Secrets now in sync, whether a failure is worth retrying sooner)."""
        if not specs:
            return 0, False
        try:
            built = await run_blocking(read_volume_data, record.target_path, specs)
        except OSError as err:
            if self._table.get(record.target_path) is None:
                return 0, False  # unpublished while it was being read
            message = f"cannot read the mounted files of {record.target_path}: {err.strerror}"
            self._report.failed(record, FAILED_TO_CREATE, "FileReadError", message)
            return 0, True
        synced, retry = 0, False
        for item in built:
            if item.error:
                self._report.failed(record, FAILED_TO_CREATE, "InvalidSecretData", item.error)
                continue
            written = await self._ensure(record, item)
            synced += written is True
            retry |= written is None
        return synced, retry

    async def _let_go(self, record: VolumeRecord, named: frozenset[str]) -> bool:
        """Release what this pod holds that the class no longer names; remember the rest.
        True when a release failed (retry sooner)."""
        held = self._held.get(record.target_path)
        if held is not None:
            previous = held.names
        elif record.mounted_at < self._started_at and named:
            # Mounted before this process started: what it held is unknown here. Asked only
            # when the class still names Secrets (the API is being written to anyway); a
            # class that dropped secretObjects while the agent was down lets go of its
            # Secrets when the pod goes (garbage collection).
            previous = await self._held_by_api(record.pod)
        else:
            previous = frozenset()
        self._held[record.target_path] = _Held(record.pod, named)
        results = [
            await self._release(record, name, "no_longer_named")
            for name in sorted(previous - named)
        ]
        return not all(results)

    async def _held_by_api(self, pod: PodIdentity) -> frozenset[str]:
        """After a restart the process does not know what a pod held: the managed Secrets of
        its namespace with a reference to it tell (one list serves a whole re-sync pass)."""
        now = self._clock()
        self._listed = {ns: v for ns, v in self._listed.items() if now - v[0] < LIST_REUSE_S}
        cached = self._listed.get(pod.namespace)
        if cached is None:
            try:
                secrets = await self._store.managed_in(pod.namespace)
            except KubernetesApiError as err:
                log.warning("secret_sync.list_failed", namespace=pod.namespace, error=err.message)
                return frozenset()
            owners = [(s.name, frozenset(o.uid for o in s.owners)) for s in secrets]
            cached = self._listed[pod.namespace] = (now, owners)
        return frozenset(name for name, uids in cached[1] if pod.uid in uids)

    # ---- one Secret ----

    async def _ensure(self, record: VolumeRecord, built: BuiltData) -> bool | None:
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
                outcome, before = await ensure_secret(
                    self._store, wanted, (consumer_reference(pod),)
                )
            except WriteFailed as failed:
                reason = ROTATION_FAILED if failed.existed else FAILED_TO_CREATE
                message = f"secret {wanted.ref}: {failed.error.message}"
                self._report.failed(record, reason, failed.error.reason, message)
                return None
        return self._report.written(record, wanted, outcome, before)

    async def _release(self, record: VolumeRecord, name: str, why: str) -> bool:
        pod = record.pod
        ref = f"{pod.namespace}/{name}"
        async with self._secret_locks.hold(ref):
            try:
                outcome = await release_secret(
                    self._store, pod.namespace, name, frozenset({pod.uid})
                )
            except KubernetesApiError as err:
                log.warning("secret_sync.release_failed", secret_name=ref, error=err.message)
                return False
        self._report.released(record, name, outcome, why)
        return True
