"""The pods on this node (``spec.nodeName=<node>``), and the cleanup when one is gone.

A pod is gone when its DELETED event arrives, when it reaches Succeeded or Failed, when a
pod of the same name with another UID replaces it, or when a relist (after a watch gap)
no longer has it. Its volumes are then released (``core.pod_cleanup``). Races are closed
from both sides: a volume recorded for a pod already known gone (deleted while its publish
ran) is released when it is recorded; a volume of a pod this cache does not know is checked
with one direct read, which decides between "not seen yet" and "gone" (restart recovery, or
a pod created and deleted within one watch gap).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from agent.aio.tasks import TaskSet
from agent.core.mount_table import MountTable
from agent.documents.spc import agent_annotations
from agent.errors import ApiNotFound, KubernetesApiError
from agent.k8s.api import KubeApi, Lane, Object
from agent.k8s.informer import Informer
from agent.k8s.informer_cache import Key
from agent.k8s.informer_settings import InformerSettings
from agent.k8s.resources import PODS
from agent.model import OwnerReference, PodInfo, VolumeRecord
from agent.ports import ChangeListener

log = structlog.get_logger(__name__)

Release = Callable[[str, str], Coroutine[Any, Any, int]]  # (pod uid, why) -> volumes released
TOMBSTONES = 4096


def decode_pod(document: Object) -> PodInfo | None:
    metadata = document.get("metadata") or {}
    spec = document.get("spec") or {}
    status = document.get("status") or {}
    uid = metadata.get("uid")
    if not isinstance(uid, str) or not uid:
        return None
    owners = tuple(
        OwnerReference(
            str(ref.get("apiVersion", "")),
            str(ref.get("kind", "")),
            str(ref.get("name", "")),
            str(ref.get("uid", "")),
        )
        for ref in metadata.get("ownerReferences") or ()
        if isinstance(ref, dict)
    )
    return PodInfo(
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        uid=uid,
        phase=str(status.get("phase", "")),
        terminating=bool(metadata.get("deletionTimestamp")),
        service_account=str(spec.get("serviceAccountName", "")),
        owners=owners,
        annotations=agent_annotations(metadata),
    )


class PodWatcher:
    """Pod informer handler; implements ``ports.PodLookup`` over its cache."""

    def __init__(
        self,
        api: KubeApi,
        node_name: str,
        table: MountTable,
        release: Release,
        settings: InformerSettings | None = None,
    ) -> None:
        self._api = api
        self._table = table
        self._release = release
        self._uids: dict[str, Key] = {}
        # UIDs known gone, newest last, so a volume recorded after its pod left is released.
        self._gone: OrderedDict[str, None] = OrderedDict()
        self._checking: set[str] = set()
        self._listeners: list[ChangeListener] = []
        self.work = TaskSet("pods")
        self.informer: Informer[PodInfo] = Informer(
            "pods",
            api,
            PODS,
            decode_pod,
            selectors={"fieldSelector": f"spec.nodeName={node_name}"},
            handler=self,
            settings=settings,
        )
        table.subscribe(self._volume_recorded)

    def listen(self, listener: ChangeListener) -> None:
        """Tell ``listener`` of every pod on this node created or edited."""
        self._listeners.append(listener)

    # ---- PodLookup ----

    async def get(self, namespace: str, name: str) -> PodInfo | None:
        cached = self.informer.get(namespace, name)
        if cached is not None:
            return cached
        try:  # for background work (secret sync): a miss does not spend kubelet's budget
            return decode_pod(await self._api.get(PODS, namespace, name, Lane.BACKGROUND))
        except ApiNotFound:
            return None

    # ---- informer events ----

    def on_upsert(self, key: Key, old: PodInfo | None, new: PodInfo) -> None:
        if old is not None and old.uid != new.uid:
            self._pod_gone(old, "replaced by a pod of the same name")
        self._uids[new.uid] = key
        if new.finished:
            self._pod_gone(new, f"phase {new.phase}")
            return
        same_pod = old if old is not None and old.uid == new.uid else None
        for listener in self._listeners:
            listener.pod_changed(same_pod, new)

    def on_delete(self, key: Key, old: PodInfo) -> None:
        self._pod_gone(old, "deleted")

    def on_synced(self) -> None:
        """After a (re)list: a volume whose pod the cache lacks is checked."""
        known = {pod.uid for pod in self.informer.items.values()}
        for uid in list(self._uids):
            if uid not in known:
                del self._uids[uid]
        for record in self._table:
            if record.pod.uid not in known:
                self._check(record)

    # ---- internals ----

    def _pod_gone(self, pod: PodInfo, why: str) -> None:
        self._uids.pop(pod.uid, None)
        self._gone[pod.uid] = None
        self._gone.move_to_end(pod.uid)
        while len(self._gone) > TOMBSTONES:
            self._gone.popitem(last=False)
        if self._table.of_pod(pod.uid):
            self.work.spawn(self._release(pod.uid, why), f"release-{pod.uid}")

    def _volume_recorded(self, record: VolumeRecord) -> None:
        uid = record.pod.uid
        if uid in self._gone:
            self.work.spawn(self._release(uid, "gone while its volume was published"), uid)
        elif self.informer.synced and uid not in self._uids:
            self._check(record)

    def _check(self, record: VolumeRecord) -> None:
        if record.pod.uid in self._checking:
            return
        self._checking.add(record.pod.uid)
        self.work.spawn(self._confirm(record), f"check-{record.pod.uid}")

    async def _confirm(self, record: VolumeRecord) -> None:
        pod = record.pod
        try:
            found = decode_pod(await self._api.get(PODS, pod.namespace, pod.name, Lane.BACKGROUND))
        except ApiNotFound:
            found = None
        except KubernetesApiError as err:
            # Undecided; the next relist (or the pod's own events) will tell.
            log.info("pods.check_failed", pod=pod.name, namespace=pod.namespace, error=err.message)
            return
        finally:
            self._checking.discard(pod.uid)
        if found is None or found.uid != pod.uid:
            self._pod_gone(PodInfo(pod.namespace, pod.name, pod.uid), "no longer in the API")
        elif found.finished:
            self._pod_gone(found, f"phase {found.phase}")
