"""Which of a Secret's owner references another live consumer still holds.

A consumer is a (pod, class) pair with a SecretProviderClassPodStatus that says mounted,
whose class names the Secret, and whose pod exists and is neither terminating nor finished
(upstream's sync skips those pods too; counting them would keep a scaled-to-zero workload's
Secret, since every pod of a scale-down is marked for deletion before any unmounts). It
holds each of its pod's owners.

Cost of one census (API calls): one list of the namespace's statuses; classes come from the
class cache; a candidate's pod from this node's pod cache costs nothing, one on another node
one GET, read in the order most likely to answer first (pods named after an owner, as
ReplicaSets, StatefulSets and Jobs name theirs) and stopping once every reference asked
about is known held. Beyond ``remote_reads`` GETs the remaining pods come from one list
instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from agent.errors import AgentError, SecretProviderClassNotFound
from agent.model import OwnerReference, PodInfo, PodStatus
from agent.ports import SecretProviderClassSource
from agent.ports_sync import SecretConsumers
from agent.sync.spec import parse_secret_objects

REMOTE_READS = 3
ConsumerKey = tuple[str, str]  # (pod uid, class name)


@dataclass(frozen=True, slots=True)
class Leaving:
    """The consumer letting go: never counted as a holder."""

    namespace: str
    pod_uid: str
    spc_name: str
    status_name: str


@dataclass(frozen=True, slots=True)
class Census:
    held: frozenset[str]  # uids, among those asked about, that a live consumer holds
    seen: frozenset[ConsumerKey]  # the consumers examined (a later census skips them)


class Holders:
    def __init__(
        self,
        consumers: SecretConsumers,
        classes: SecretProviderClassSource,
        *,
        remote_reads: int = REMOTE_READS,
    ) -> None:
        self._consumers = consumers
        self._classes = classes
        self._remote_reads = remote_reads

    async def census(
        self,
        leaving: Leaving,
        secret: str,
        refs: Sequence[OwnerReference],
        *,
        skip: frozenset[ConsumerKey] = frozenset(),
    ) -> Census:
        """Which of ``refs`` (on Secret ``secret``) other consumers hold, leaving out those in
        ``skip``; nothing to ask about costs nothing. Raises KubernetesApiError when the API
        cannot tell."""
        if not refs:
            return Census(frozenset(), skip)
        statuses = await self._consumers.pod_statuses(leaving.namespace)
        names: dict[str, bool] = {}
        candidates = []
        for status in statuses:
            key = (status.pod_uid, status.spc_name)
            if key in skip or key == (leaving.pod_uid, leaving.spc_name) or not status.mounted:
                continue
            if status.spc_name not in names:
                names[status.spc_name] = await self._names(status, secret)
            if names[status.spc_name]:
                candidates.append(status)
        held = await self._held(leaving.namespace, candidates, refs)
        return Census(held, skip | {(s.pod_uid, s.spc_name) for s in candidates})

    async def _names(self, status: PodStatus, secret: str) -> bool:
        try:
            spc = await self._classes.get(status.namespace, status.spc_name)
        except SecretProviderClassNotFound:
            return False
        except AgentError:
            return True  # unreadable for now: assume it still names the Secret (keep)
        return secret in parse_secret_objects(spc.secret_objects).named

    async def _held(
        self, namespace: str, candidates: list[PodStatus], wanted: Sequence[OwnerReference]
    ) -> frozenset[str]:
        uids = frozenset(ref.uid for ref in wanted)
        held: set[str] = set()
        remote = []
        for status in candidates:
            pod = self._consumers.cached_pod(namespace, status.pod_name)
            if pod is not None and pod.uid == status.pod_uid:
                held |= _live_owners(pod, status) & uids
            else:
                remote.append(status)
        prefixes = tuple(f"{ref.name}-" for ref in wanted)
        remote.sort(key=lambda status: not status.pod_name.startswith(prefixes))
        for index, status in enumerate(remote):
            if held >= uids:
                break
            if index == self._remote_reads:
                pods = {pod.uid: pod for pod in await self._consumers.list_pods(namespace)}
                for rest in remote[index:]:
                    held |= _live_owners(pods.get(rest.pod_uid), rest) & uids
                break
            pod = await self._consumers.read_pod(namespace, status.pod_name)
            held |= _live_owners(pod, status) & uids
        return frozenset(held)


def _live_owners(pod: PodInfo | None, status: PodStatus) -> set[str]:
    if pod is None or pod.uid != status.pod_uid or pod.terminating or pod.finished:
        return set()
    return {ref.uid for ref in pod.owners}


def uids_of(refs: Iterable[OwnerReference]) -> frozenset[str]:
    return frozenset(ref.uid for ref in refs)
