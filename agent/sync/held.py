"""What each volume's consumer may hold: the Secrets it may have a reference on and the uids of
those references, kept until it has let go of them (docs/secret-sync.md, "What a consumer
may hold").

A census (``holders``) keeps a reference for any consumer whose status object says mounted,
whose class names the Secret *now* and whose pod has that owner *now*, whether or not that
consumer ever synced. So the record is a superset, built from what this process sees, with no
API call: the names of every version of the class seen while the volume is mounted (at each
sync's start, before anything can make it return early, and the moment the class changes),
and the owners its pod had then. A name leaves the record only once its release went
through; a failed one stays and is tried again. A volume that goes while another volume of
the same consumer (same pod, same class) stays hands its record over (``add``).

A volume mounted before this process started is not ``known``: what it held before is read
from the managed Secrets of its namespace when it is needed (one list per namespace, reused for
``LIST_REUSE_S`` so a whole re-sync pass costs one): those with a reference to one of the
pod's owners, to its status object, or (the legacy form) to the pod itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import structlog

from agent.errors import KubernetesApiError
from agent.model import OwnerReference, VolumeRecord, pod_status_name
from agent.ports_sync import SecretStore
from agent.sync.owners import is_pod_reference, is_status_reference

log = structlog.get_logger("agent.sync")

LIST_REUSE_S = 30.0
NOTHING: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Held:
    names: frozenset[str]  # Secrets the consumer may hold a reference on
    owned: frozenset[str]  # uids of the references it may hold on them
    # False: mounted before this process started and not read from the API since, so it may
    # hold more than ``names`` (``HeldSecrets.recover``).
    known: bool = True

    def __or__(self, other: Held) -> Held:
        return Held(self.names | other.names, self.owned | other.owned, self.known and other.known)


class HeldSecrets:
    def __init__(self, store: SecretStore, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock
        self._started_at = clock()
        self._by_target: dict[str, Held] = {}
        # namespace -> (when listed, [(Secret name, its owner references)]), managed only.
        self._listed: dict[str, tuple[float, list[tuple[str, tuple[OwnerReference, ...]]]]] = {}

    def get(self, record: VolumeRecord) -> Held:
        """The record; for a volume with none yet, nothing, known unless it was mounted before
        this process started."""
        held = self._by_target.get(record.target_path)
        if held is None:
            held = Held(NOTHING, NOTHING, known=record.mounted_at >= self._started_at)
        return held

    def note(
        self, record: VolumeRecord, names: Iterable[str], owners: Iterable[OwnerReference] = ()
    ) -> Held:
        """The volume may hold ``names`` through ``owners`` from now on. Only for a volume in
        the mount table: the record goes with ``forget`` when the volume is removed."""
        return self.add(record, Held(frozenset(names), frozenset(ref.uid for ref in owners)))

    def add(self, record: VolumeRecord, held: Held) -> Held:
        """``held`` joins the volume's record (a sibling's, or what the API says it holds)."""
        merged = self.get(record) | held
        self._by_target[record.target_path] = merged
        return merged

    def recovered(self, record: VolumeRecord, held: Held) -> Held:
        """What the API says the volume holds joins its record, which is then known."""
        merged = self.get(record) | held
        merged = self._by_target[record.target_path] = Held(merged.names, merged.owned)
        return merged

    def let_go(self, record: VolumeRecord, names: Iterable[str]) -> None:
        """The consumer no longer holds ``names`` (released, or its class names nothing)."""
        held = self._by_target.get(record.target_path)
        if held is not None:
            self._by_target[record.target_path] = Held(
                held.names - set(names), held.owned, held.known
            )

    def holds_nothing(self, record: VolumeRecord) -> None:
        """Its class names nothing, and it holds nothing: known, whatever it was before (a
        volume mounted before the start whose class names nothing is not asked about)."""
        self._by_target[record.target_path] = Held(NOTHING, self.get(record).owned)

    def forget(self, record: VolumeRecord) -> Held:
        held = self.get(record)
        self._by_target.pop(record.target_path, None)
        return held

    async def recover(self, record: VolumeRecord, owners: Iterable[OwnerReference]) -> Held | None:
        """What the volume's consumer holds, read from the managed Secrets of its namespace:
        references to ``owners`` (the pod's, when known), to its status object, or to the pod.
        None when the API cannot say now (logged; the caller tries again later)."""
        pod = record.pod
        uids = {ref.uid for ref in owners}
        status = pod_status_name(pod.name, pod.namespace, record.spc_name)
        listed = await self._managed(pod.namespace)
        if listed is None:
            return None
        names: set[str] = set()
        owned: set[str] = set()
        for name, refs in listed:
            mine = [
                ref
                for ref in refs
                if ref.uid in uids
                or is_status_reference(ref, status)
                or is_pod_reference(ref, pod.uid)
            ]
            if mine:
                names.add(name)
                owned.update(ref.uid for ref in mine)
        return Held(frozenset(names), frozenset(owned))

    async def _managed(self, namespace: str) -> list[tuple[str, tuple[OwnerReference, ...]]] | None:
        now = self._clock()
        self._listed = {ns: v for ns, v in self._listed.items() if now - v[0] < LIST_REUSE_S}
        cached = self._listed.get(namespace)
        if cached is None:
            try:
                secrets = await self._store.managed_in(namespace)
            except KubernetesApiError as err:
                log.warning("secret_sync.list_failed", namespace=namespace, error=err.message)
                return None
            cached = self._listed[namespace] = (now, [(s.name, s.owners) for s in secrets])
        return cached[1]
