"""What each volume's consumer holds: the Secrets it synced and the owner references it
added to them, so it can let go of exactly those when its volume goes or its class stops
naming a Secret.

Kept in memory per target path. After a restart the process does not know what a volume
held: the managed Secrets of its namespace tell (one list per namespace, reused for
``LIST_REUSE_S`` so a whole re-sync pass costs one): those with a reference to one of the
pod's owners, to its status object, or (the legacy form) to the pod itself. A pod deleted
while the agent was down has left the pod cache, so only the last two can be recognized;
its owners' references stay on the Secret until garbage collection takes it with them
(docs/secret-sync.md).
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


@dataclass(frozen=True, slots=True)
class Held:
    names: frozenset[str]  # the Secrets the volume's class named at its last sync
    owned: frozenset[str]  # uids of the references its consumer added to them


class HeldSecrets:
    def __init__(self, store: SecretStore, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock
        self._by_target: dict[str, Held] = {}
        # namespace -> (when listed, [(Secret name, its owner references)]), managed only.
        self._listed: dict[str, tuple[float, list[tuple[str, tuple[OwnerReference, ...]]]]] = {}

    def get(self, target_path: str) -> Held | None:
        return self._by_target.get(target_path)

    def remember(
        self, record: VolumeRecord, names: frozenset[str], owners: Iterable[OwnerReference]
    ) -> None:
        """After a sync: ``names`` held through ``owners`` (added to what was owned before:
        a reference added once is let go of when the volume goes, even if the pod's owners
        changed meanwhile)."""
        before = self._by_target.get(record.target_path)
        owned = frozenset(ref.uid for ref in owners) | (before.owned if before else frozenset())
        self._by_target[record.target_path] = Held(names, owned)

    def forget(self, target_path: str) -> Held | None:
        return self._by_target.pop(target_path, None)

    async def recover(self, record: VolumeRecord, owners: Iterable[OwnerReference]) -> Held:
        """What the volume's consumer held, read from the managed Secrets of its namespace:
        references to ``owners`` (the pod's, when known), to its status object, or to the pod.
        Nothing when the API cannot say (logged)."""
        pod = record.pod
        uids = {ref.uid for ref in owners}
        status = pod_status_name(pod.name, pod.namespace, record.spc_name)
        names: set[str] = set()
        owned: set[str] = set()
        for name, refs in await self._managed(pod.namespace):
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

    async def _managed(self, namespace: str) -> list[tuple[str, tuple[OwnerReference, ...]]]:
        now = self._clock()
        self._listed = {ns: v for ns, v in self._listed.items() if now - v[0] < LIST_REUSE_S}
        cached = self._listed.get(namespace)
        if cached is None:
            try:
                secrets = await self._store.managed_in(namespace)
            except KubernetesApiError as err:
                log.warning("secret_sync.list_failed", namespace=namespace, error=err.message)
                return []
            cached = self._listed[namespace] = (now, [(s.name, s.owners) for s in secrets])
        return cached[1]
