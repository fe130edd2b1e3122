"""A consumer lets go of Secrets it may hold (``release`` decides each one), until it has: a
release that failed in a way worth retrying (an outage, a 5xx, a 429, conflicts that never
end) is kept and tried again, never dropped. A refusal (403 without the RBAC rule for
Secrets, 422) cannot be helped by retrying: it is logged and dropped, as it always was.

Two callers. A sync lets go of what its class no longer names; what failed stays in the
volume's record (``held``) and the volume is retried sooner (``SecretSyncer.failing``). A
removed volume (no other volume of its consumer left) lets go of everything it may hold;
what failed is kept here (``leftovers``, by target path) and tried again by the re-sync
loop's retries (``SecretSyncer.retry_removed``) until it goes through. A restart loses
those: the volume is gone, so nothing on the node says what it held, and garbage collection
takes the references with their owners (docs/secret-sync.md, "After a restart").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import structlog

from agent.aio.locks import KeyedLock
from agent.errors import ApiConflict, ApiUnavailable, KubernetesApiError
from agent.model import OwnerReference, VolumeRecord, pod_status_name
from agent.sync.held import Held, HeldSecrets
from agent.sync.holders import Leaving
from agent.sync.release import SecretRelease
from agent.sync.reporting import SyncReporter

log = structlog.get_logger("agent.sync")

Owners = tuple[OwnerReference, ...]
REMOVED = "volume_removed"


@dataclass(frozen=True, slots=True)
class Leftover:
    """A removed volume's Secrets whose release failed."""

    record: VolumeRecord
    held: Held
    owners: Owners  # its pod's owners when it went


class LettingGo:
    def __init__(
        self,
        release: SecretRelease,
        held: HeldSecrets,
        report: SyncReporter,
        secret_locks: KeyedLock,
        retry_wanted: Callable[[], None],
    ) -> None:
        """``secret_locks`` serializes work on one Secret (shared with the syncs that write
        it); ``retry_wanted()`` is told when a removed volume's release failed."""
        self._release_one = release
        self._held = held
        self._report = report
        self._secret_locks = secret_locks
        self._retry_wanted = retry_wanted
        self.leftovers: dict[str, Leftover] = {}

    async def release(
        self, record: VolumeRecord, names: Iterable[str], owned: frozenset[str], why: str
    ) -> frozenset[str]:
        """Let ``record``'s consumer go of each of ``names`` (references with uids in ``owned``).
        Returns those it no longer holds: released, found not held, or refused by the API
        for good (logged: 403 without the RBAC rule, 422; as before, not tried again). The
        others failed in a way worth retrying (an outage, 5xx, 429, endless conflicts) and
        are still held."""
        done = set()
        for name in sorted(names):
            if await self._release(record, name, owned, why):
                done.add(name)
        return frozenset(done)

    async def leave(self, record: VolumeRecord, held: Held, owners: Owners) -> None:
        """The volume is gone, and no other volume of its consumer is mounted: let go of all it
        may hold (a record not ``known`` is completed from the API first). What fails is kept
        in ``leftovers``, with anything an earlier removal of the same target left."""
        earlier = self.leftovers.pop(record.target_path, None)
        if earlier is not None:
            held, owners = held | earlier.held, (*owners, *earlier.owners)
        if not held.known:
            recovered = await self._held.recover(record, owners)
            if recovered is None:
                self._keep(Leftover(record, held, owners))
                return
            held = Held(held.names | recovered.names, held.owned | recovered.owned)
        owned = held.owned | {ref.uid for ref in owners}
        left = held.names - await self.release(record, held.names, owned, REMOVED)
        if left:
            self._keep(Leftover(record, Held(left, owned), owners))

    def _keep(self, leftover: Leftover) -> None:
        self.leftovers[leftover.record.target_path] = leftover
        self._retry_wanted()

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
                return not isinstance(err, ApiUnavailable | ApiConflict)
        self._report.released(record, name, outcome, why)
        return True
