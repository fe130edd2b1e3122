"""Sync as Kubernetes Secret: implements ``ports.SecretSync`` (upstream §7, with the owner
semantics of ``owners``).

For one volume: parse the class's ``secretObjects`` (a broken entry is a Warning event
naming its field; the others go on), build every Secret's data from the mounted files in a
worker thread, then create or update each Secret with this volume's pod among its owners,
and let go of Secrets the class no longer names. Work on one Secret is serialized in this
process (two volumes of a node never race each other); other nodes are handled by the
optimistic concurrency in ``apply``. Nothing raises to the caller: failures are Warning
events on the pod (``FailedToCreateSecret``; ``SecretRotationFailed`` when an existing
Secret could not be updated), log lines and metrics, and the next re-sync tries again.
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
from agent.sync.apply import (
    Outcome,
    WriteFailed,
    ensure_secret,
    managed_labels,
    release_secret,
)
from agent.sync.data import BuiltData, read_volume_data
from agent.sync.owners import consumer_reference
from agent.sync.spec import ParsedSecretObjects, SecretSpec, parse_secret_objects

log = structlog.get_logger("agent.sync")

FAILED_TO_CREATE = "FailedToCreateSecret"
ROTATION_COMPLETE = "SecretRotationComplete"
ROTATION_FAILED = "SecretRotationFailed"
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
        self._events = events
        self._observer = observer
        self.pods = pods  # set once the pod informer exists (it is built after the syncer)
        self._clock = clock
        self._started_at = clock()
        self._listed: dict[str, tuple[float, list[SecretObject]]] = {}
        self._volume_locks = KeyedLock()
        self._secret_locks = KeyedLock()
        self._held: dict[str, _Held] = {}
        self.failing: set[str] = set()  # target paths whose last sync failed somewhere

    # ---- ports.SecretSync ----

    async def volume_written(self, record: VolumeRecord, spc: SecretProviderClass) -> None:
        target = record.target_path
        async with self._volume_locks.hold(target):
            if not await self._still_mounted(record):
                return
            started = time.perf_counter()
            parsed = parse_secret_objects(spc.secret_objects)
            failures = self._report_problems(record, parsed)
            synced, more_failures = await self._sync_specs(record, parsed.specs)
            failures += more_failures
            failures += await self._let_go(record, parsed.named)
            if failures:
                self.failing.add(target)
            else:
                self.failing.discard(target)
            if parsed.specs and self._observer is not None:
                self._observer.secrets_synced(
                    record.provider, synced, time.perf_counter() - started
                )

    async def volume_removed(self, record: VolumeRecord) -> None:
        target = record.target_path
        async with self._volume_locks.hold(target):
            self.failing.discard(target)
            held = self._held.pop(target, None)
            names = held.names if held is not None else await self._held_by_api(record.pod)
            for name in sorted(names):
                await self._release(record.pod, name, "volume_removed")

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
        return (
            pod is not None and pod.uid == record.pod.uid and not (pod.terminating or pod.finished)
        )

    def _report_problems(self, record: VolumeRecord, parsed: ParsedSecretObjects) -> int:
        for problem in parsed.problems:
            self._failed(record, FAILED_TO_CREATE, "InvalidSecretObject", problem.message)
        return len(parsed.problems)

    async def _sync_specs(
        self, record: VolumeRecord, specs: tuple[SecretSpec, ...]
    ) -> tuple[int, int]:
        """(Secrets now in sync, failures)."""
        if not specs:
            return 0, 0
        try:
            built = await run_blocking(read_volume_data, record.target_path, specs)
        except OSError as err:
            message = f"cannot read the mounted files of {record.target_path}: {err.strerror}"
            self._failed(record, FAILED_TO_CREATE, "FileReadError", message)
            return 0, len(specs)
        synced = failures = 0
        for item in built:
            if item.error:
                self._failed(record, FAILED_TO_CREATE, "InvalidSecretData", item.error)
                failures += 1
            elif await self._ensure(record, item):
                synced += 1
            else:
                failures += 1
        return synced, failures

    async def _let_go(self, record: VolumeRecord, named: frozenset[str]) -> int:
        """Release what this pod holds that the class no longer names; remember the rest."""
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
        failures = 0
        for name in sorted(previous - named):
            if not await self._release(record.pod, name, "no_longer_named"):
                failures += 1
        return failures

    async def _held_by_api(self, pod: PodIdentity) -> frozenset[str]:
        """After a restart the process does not know what a pod held: the managed Secrets of
        its namespace with a reference to it tell."""
        cached = self._listed.get(pod.namespace)
        if cached is not None and self._clock() - cached[0] < LIST_REUSE_S:
            secrets = cached[1]
        else:
            try:
                secrets = await self._store.managed_in(pod.namespace)
            except KubernetesApiError as err:
                log.warning("secret_sync.list_failed", namespace=pod.namespace, error=err.message)
                return frozenset()
            # One list serves every recovered volume of the namespace in a re-sync pass.
            self._listed[pod.namespace] = (self._clock(), secrets)
        return frozenset(s.name for s in secrets if any(o.uid == pod.uid for o in s.owners))

    # ---- one Secret ----

    async def _ensure(self, record: VolumeRecord, built: BuiltData) -> bool:
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
                self._failed(record, reason, failed.error.reason, message)
                return False
        return self._report(record, wanted, outcome, before)

    def _report(
        self,
        record: VolumeRecord,
        wanted: SecretObject,
        outcome: Outcome,
        before: SecretObject | None,
    ) -> bool:
        pod = record.pod
        fields = {"secret": wanted.name, "namespace": pod.namespace, "pod": pod.name}
        if outcome is Outcome.NOT_MANAGED:
            message = (
                f"secret {wanted.ref} already exists and is not managed by secret sync (no "
                f"label secrets-store.csi.k8s.io/managed=true): left unchanged"
            )
            self._failed(record, FAILED_TO_CREATE, "SecretNotManaged", message)
            return False
        if outcome is Outcome.CREATED:
            log.info("secret_sync.created", **fields, type=wanted.type)
        elif outcome is Outcome.UPDATED and before is not None:
            log.info("secret_sync.updated", **fields, keys=sorted(wanted.data))
            if self._events is not None:
                self._events.normal(
                    pod, ROTATION_COMPLETE, f"successfully rotated K8s secret {wanted.name}"
                )
        elif outcome is Outcome.OWNERS_CHANGED:
            log.info("secret_sync.owner_added", **fields)
        return True

    async def _release(self, pod: PodIdentity, name: str, why: str) -> bool:
        ref = f"{pod.namespace}/{name}"
        async with self._secret_locks.hold(ref):
            try:
                outcome = await release_secret(
                    self._store, pod.namespace, name, frozenset({pod.uid})
                )
            except KubernetesApiError as err:
                log.warning("secret_sync.release_failed", secret=ref, error=err.message)
                return False
        if outcome in (Outcome.DELETED, Outcome.OWNERS_CHANGED):
            log.info(
                f"secret_sync.{outcome.value}",
                secret=name,
                namespace=pod.namespace,
                pod=pod.name,
                why=why,
            )
        return True

    def _failed(self, record: VolumeRecord, reason: str, error_type: str, message: str) -> None:
        pod = record.pod
        log.warning(
            "secret_sync.failed",
            pod=pod.name,
            namespace=pod.namespace,
            spc=record.spc_name,
            reason=reason,
            error_type=error_type,
            error=message,
        )
        if self._events is not None:
            self._events.warning(pod, reason, message)
        if self._observer is not None:
            self._observer.secret_sync_failed(record.provider, error_type)
