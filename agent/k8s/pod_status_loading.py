"""This node's SecretProviderClassPodStatus objects, read back at start for restart recovery.

One paged list by the node label, read from the apiserver's watch cache (``resourceVersion=0``,
as upstream's cached client does): etcd cannot filter by label, so read from etcd each node's
start would read every status in the cluster. The cache may lag by a moment: a status written
just before is then missed, and the volume it describes gets it again from recovery (which
takes over what it finds); one of a volume that did not survive stays until its pod's garbage
collection. A status whose ``targetPath`` does not lie under its owner pod's directory (edited
by hand, or forged) is reported and left out, so recovery never acts on that path; one that does
not decode is reported and skipped. With the API unreachable the list is empty (logged):
recovery then rests on the volumes and their metadata on disk.
"""

from __future__ import annotations

from typing import Any

import structlog

from agent.documents.pod_status import KIND, NODE_LABEL, from_manifest
from agent.errors import KubernetesApiError
from agent.k8s.api import KubeApi, Lane
from agent.k8s.pod_status_claims import target_matches
from agent.k8s.pod_status_objects import StatusObjects
from agent.k8s.resources import SPC_POD_STATUSES
from agent.model import PodStatus

log = structlog.get_logger(__name__)


async def load_node_statuses(api: KubeApi, node: str, objects: StatusObjects) -> list[PodStatus]:
    """The statuses labelled with ``node`` whose target path matches their pod; each one read
    is remembered in ``objects`` (its resourceVersion and uid for later conditional writes),
    and ``objects.loaded`` is set once the whole list was read."""
    statuses: list[PodStatus | None] = []
    token = ""
    try:
        while True:
            page = await api.list(
                SPC_POD_STATUSES,
                Lane.PUBLISH,
                selectors={"labelSelector": f"{NODE_LABEL}={node}"},
                continue_token=token,
                not_older_than="" if token else "0",
            )
            statuses.extend(_accept(item, objects) for item in page.get("items") or ())
            token = str((page.get("metadata") or {}).get("continue") or "")
            if not token:
                break
    except KubernetesApiError as err:
        log.warning("pod_status.load_failed", error=err.message)
        return []
    objects.loaded = True
    return [status for status in statuses if status is not None and target_matches(status)]


def _accept(document: Any, objects: StatusObjects) -> PodStatus | None:
    try:
        status = from_manifest({**document, "kind": KIND})
    except (TypeError, ValueError) as err:
        log.warning("pod_status.undecodable", error=str(err))
        return None
    objects.remember((status.namespace, status.name), status, document)
    if not target_matches(status):
        log.warning(
            "pod_status.target_path_mismatch",
            namespace=status.namespace,
            name=status.name,
            pod_uid=status.pod_uid,
            target_path=status.target_path,
        )
    return status
