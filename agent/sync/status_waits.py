"""A consumer's status object comes before its sync reads a Secret (docs/secret-sync.md,
"Nodes acting at once", rule 1): the references one volume's sync adds, once this node's
SecretProviderClassPodStatus for it is written. Even a pod with owners waits for it: the
consumer is then visible to other nodes' censuses (``release``) before it reads a Secret, so
none of them can remove a reference it found there and relied on.

The sync waits a bounded time (``SecretConsumers.status_reference``) for the status write
queued behind the publish. Status writes share the API's rate limit with Secret writes, so in
a burst of pod starts many take longer than that; such a volume is not synced then (nor
retried on a timer) but remembered, and handed to ``ready`` the moment its status write
settles (``SecretConsumers.on_status_settled``). No API call: the store knows when its own
writes land.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from agent.model import OwnerReference, PodInfo, VolumeRecord, pod_status_name
from agent.ports_sync import SecretConsumers
from agent.sync.owners import consumer_owners

log = structlog.get_logger("agent.sync")

Owners = tuple[OwnerReference, ...]
StatusKey = tuple[str, str]


class StatusWaits:
    def __init__(self, consumers: SecretConsumers, ready: Callable[[str], None]) -> None:
        """``ready(target_path)``: the status a deferred volume waited for is settled."""
        self._consumers = consumers
        self._ready = ready
        self._waiting: dict[str, StatusKey] = {}  # target path -> status it waits for
        consumers.on_status_settled(self._settled)

    async def owners(self, record: VolumeRecord, pod: PodInfo) -> Owners | None:
        """This consumer's references once its status is written (its pod's owners, else the
        status itself); empty when the status does not exist and the pod has no owners
        (retry sooner). None when the status write is still pending: the volume is handed
        to ``ready`` once it settles, so a pod with owners is no exception to the rule."""
        key = (pod.namespace, pod_status_name(pod.name, pod.namespace, record.spc_name))
        target = record.target_path
        if self._waiting.get(target) == key and self._consumers.status_pending(*key):
            return None  # already waiting for it: no second bounded wait (a pass goes on)
        status = await self._consumers.status_reference(*key)
        # No await from here on: a write that settles now cannot slip past the check.
        if status is None and self._consumers.status_pending(*key):
            self._waiting[target] = key
            log.info("secret_sync.pod_status_unwritten", pod=pod.name, status=key[1])
            return None
        self._waiting.pop(target, None)
        return consumer_owners(pod, status)

    def forget(self, target: str) -> None:
        """The volume is gone: nothing to sync when its status settles."""
        self._waiting.pop(target, None)

    def _settled(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        for target in [target for target, wanted in self._waiting.items() if wanted == key]:
            del self._waiting[target]
            self._ready(target)
