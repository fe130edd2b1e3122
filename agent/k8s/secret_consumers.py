"""Who mounts what, cluster-wide, for secret sync's owner references: implements
``ports_sync.SecretConsumers``.

Reads what upstream's Patcher reads (§7): SecretProviderClassPodStatus objects (which pod
mounts which class; every node writes its own) and pods (their ``ownerReferences``). This
node's pods come from the pod informer's cache for free; other nodes' pods cost one GET each
or one list. A bare pod's status is referenced by the uid its writer here got back from the
API, so adding that reference reads nothing either. Reads go on the background lane: they
never delay kubelet's calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from agent.documents.pod_status import API_VERSION, KIND, from_manifest
from agent.errors import ApiNotFound
from agent.k8s.api import KubeApi, Lane, Object
from agent.k8s.pod_statuses import KubePodStatusStore
from agent.k8s.pods import PodWatcher, decode_pod
from agent.k8s.resources import PODS, SPC_POD_STATUSES, Resource
from agent.model import OwnerReference, PodInfo, PodStatus

log = structlog.get_logger(__name__)

STATUS_WAIT_S = 10.0


class KubeSecretConsumers:
    def __init__(
        self,
        api: KubeApi,
        statuses: KubePodStatusStore,
        pods: Callable[[], PodWatcher | None],
        *,
        status_wait: float = STATUS_WAIT_S,
    ) -> None:
        """``pods`` gives the pod watcher once it exists (it is built after this object);
        ``status_wait`` bounds how long ``status_reference`` waits for a queued write
        (seconds; tests set it to 0 to give up at once)."""
        self._api = api
        self._statuses = statuses
        self._pods = pods
        self.status_wait = status_wait

    async def status_reference(self, namespace: str, name: str) -> OwnerReference | None:
        try:
            async with asyncio.timeout(self.status_wait):
                uid = await self._statuses.written_uid(namespace, name)
        except TimeoutError:
            return None
        return OwnerReference(API_VERSION, KIND, name, uid) if uid else None

    def status_pending(self, namespace: str, name: str) -> bool:
        return self._statuses.is_pending(namespace, name)

    def on_status_settled(self, listener: Callable[[str, str], None]) -> None:
        self._statuses.on_settled(listener)

    async def pod_statuses(self, namespace: str) -> list[PodStatus]:
        found: list[PodStatus] = []
        for item in await self._list(SPC_POD_STATUSES, namespace):
            try:
                found.append(from_manifest({**item, "kind": KIND}))
            except (TypeError, ValueError) as err:
                log.info("secret_consumers.undecodable_status", namespace=namespace, error=str(err))
        return found

    def cached_pod(self, namespace: str, name: str) -> PodInfo | None:
        watcher = self._pods()
        return watcher.informer.get(namespace, name) if watcher is not None else None

    async def read_pod(self, namespace: str, name: str) -> PodInfo | None:
        try:
            return decode_pod(await self._api.get(PODS, namespace, name, Lane.BACKGROUND))
        except ApiNotFound:
            return None

    async def list_pods(self, namespace: str) -> list[PodInfo]:
        decoded = (decode_pod(item) for item in await self._list(PODS, namespace))
        return [pod for pod in decoded if pod is not None]

    async def _list(self, resource: Resource, namespace: str) -> list[Object]:
        items: list[Object] = []
        token = ""
        while True:
            page = await self._api.list(
                resource, Lane.BACKGROUND, namespace=namespace, continue_token=token
            )
            items.extend(item for item in page.get("items") or () if isinstance(item, dict))
            token = str((page.get("metadata") or {}).get("continue") or "")
            if not token:
                return items
