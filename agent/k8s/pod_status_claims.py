"""Whose a SecretProviderClassPodStatus object is, read from the object itself.

Upstream's node writes a status only from NodePublishVolume, i.e. for a pod that kubelet is
running, so it may take over any object of that name (upstream §6: a StatefulSet pod
rescheduled under the same name finds its old node's object). This agent also writes from
restart recovery and deletes when a pod is gone, for pods it may not yet know to be dead: a
node back after its pod moved elsewhere would otherwise overwrite, then delete, the status the
pod's new node had taken over. So a write that finds an object it did not write (create:
AlreadyExists; patch or delete: the ``resourceVersion`` changed) reads it, and:

- acts on it when it carries this node's label, or names the same pod (uid) as the write;
- takes over another node's object only when the pod the write is for is the pod the API holds
  under that name (one read of the pod), as upstream's publish would;
- otherwise leaves it alone: it belongs to a newer pod, on another node.
"""

from __future__ import annotations

import os
from typing import Any

import structlog

from agent.documents.pod_status import NODE_LABEL
from agent.errors import ApiNotFound
from agent.k8s.api import KubeApi, Lane, Object
from agent.k8s.resources import PODS, SPC_POD_STATUSES
from agent.model import PodStatus
from agent.targets import pod_uid_and_volume

log = structlog.get_logger(__name__)

Key = tuple[str, str]


async def read_status(api: KubeApi, key: Key) -> Object | None:
    """The object as the server holds it now; None when there is none."""
    try:
        return await api.get(SPC_POD_STATUSES, key[0], key[1], Lane.BACKGROUND)
    except ApiNotFound:
        return None


async def may_write_over(api: KubeApi, node: str, current: Object, status: PodStatus) -> bool:
    """Whether ``status`` (this node's) may replace ``current`` (found on the server)."""
    if node_of(current) == node or owner_uid(current) == status.pod_uid:
        return True
    try:
        pod = await api.get(PODS, status.namespace, status.pod_name, Lane.BACKGROUND)
    except ApiNotFound:
        pod = {}
    alive = uid_of(pod) == status.pod_uid
    if not alive:
        log.info(
            "pod_status.left_to_its_node",
            namespace=status.namespace,
            name=status.name,
            node_name=node_of(current),
            note="its pod is no longer the one this node mounted for",
        )
    return alive


def node_of(document: Any) -> str:
    labels = _metadata(document).get("labels")
    value = labels.get(NODE_LABEL) if isinstance(labels, dict) else None
    return value if isinstance(value, str) else ""


def owner_uid(document: Any) -> str:
    owners = _metadata(document).get("ownerReferences")
    first = owners[0] if isinstance(owners, list) and owners else None
    return str(first.get("uid") or "") if isinstance(first, dict) else ""


def uid_of(document: Any) -> str:
    return str(_metadata(document).get("uid") or "")


def version_of(document: Any) -> str:
    return str(_metadata(document).get("resourceVersion") or "")


def target_matches(status: PodStatus) -> bool:
    """The target path is a kubelet volume path of the status's own pod."""
    path = status.target_path
    parsed = pod_uid_and_volume(path)
    normal = os.path.isabs(path) and os.path.normpath(path) == path
    return normal and parsed is not None and parsed[0] == status.pod_uid


def _metadata(document: Any) -> dict[str, Any]:
    metadata = document.get("metadata") if isinstance(document, dict) else None
    return metadata if isinstance(metadata, dict) else {}
