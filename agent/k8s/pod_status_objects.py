"""This node's SecretProviderClassPodStatus objects as the server holds them, and the writes that
change them: create, merge patch and delete, each on condition of the ``resourceVersion`` last
seen, so a write never lands on an object someone else wrote since without a second look
(``pod_status_claims`` decides, after reading it, whether it is still this node's). A write
that meets someone else's under each of its ``ATTEMPTS`` raises ApiConflict; the caller
(``pod_statuses``) tries again later."""

from __future__ import annotations

import structlog

from agent.documents.pod_status import to_manifest
from agent.errors import ApiConflict, ApiNotFound
from agent.k8s.api import KubeApi, Lane, Object
from agent.k8s.pod_status_claims import (
    may_write_over,
    node_of,
    read_status,
    uid_of,
    version_of,
)
from agent.k8s.resources import SPC_POD_STATUSES
from agent.model import PodStatus

log = structlog.get_logger(__name__)

Key = tuple[str, str]
# Attempts of one write, each after reading what changed the object; then ApiConflict.
ATTEMPTS = 3


class StatusObjects:
    def __init__(self, api: KubeApi, node_name: str) -> None:
        self._api = api
        self._node = node_name
        # What the server holds as far as this node knows: a status, or None when absent.
        self._applied: dict[Key, PodStatus | None] = {}
        self._uids: dict[Key, str] = {}  # metadata.uid of the objects in _applied
        self._versions: dict[Key, str] = {}  # their resourceVersion, as last seen
        # True once this node's objects were listed: a key never seen is then known absent.
        self.loaded = False

    def holds(self, key: Key, status: PodStatus) -> bool:
        """The server holds exactly ``status`` (as far as this node knows)."""
        return self._applied.get(key) == status

    def uid(self, key: Key) -> str:
        """``metadata.uid`` of the object, ``""`` when it is not known to exist."""
        return self._uids.get(key, "") if self._applied.get(key) is not None else ""

    async def apply(self, key: Key, status: PodStatus) -> bool:
        """Write ``status``; False when nothing had to be sent. ApiConflict: the object
        changed under each of ``ATTEMPTS`` writes (the next call starts from the last read)."""
        if self._applied.get(key) == status:
            return False
        manifest = to_manifest(status)
        for _ in range(ATTEMPTS):
            version = self._versions.get(key)
            try:
                if version is None:  # not known to exist
                    written = await self._create(key, manifest)
                else:
                    written = await self._patch(key, manifest, version)
            except ApiNotFound:
                if version is None:
                    raise  # the namespace is gone
                self._versions.pop(key, None)  # deleted meanwhile (garbage collection)
                continue
            except ApiConflict:  # AlreadyExists, or changed since this store wrote it
                current = await read_status(self._api, key)
                if current is not None and not await may_write_over(
                    self._api, self._node, current, status
                ):
                    self._forget(key)
                    return True
                self._taking_over(key, current)
                continue
            self.remember(key, status, written)
            return True
        raise ApiConflict(f"write pod status {key[0]}/{key[1]}: changed {ATTEMPTS} times")

    def _taking_over(self, key: Key, current: Object | None) -> None:
        if current is None:
            self._versions.pop(key, None)
            return
        if node_of(current) != self._node:
            log.info("pod_status.taking_over", namespace=key[0], name=key[1])
        self._versions[key] = version_of(current)

    def remember(self, key: Key, status: PodStatus, document: Object) -> None:
        self._applied[key] = status
        self._uids[key] = uid_of(document)
        self._versions[key] = version_of(document)

    def _forget(self, key: Key) -> None:
        """The object is not (or no longer) this node's: known absent as far as it goes."""
        self._applied[key] = None
        self._uids.pop(key, None)
        self._versions.pop(key, None)

    async def _create(self, key: Key, manifest: Object) -> Object:
        return await self._api.create(SPC_POD_STATUSES, key[0], manifest, Lane.BACKGROUND)

    async def _patch(self, key: Key, manifest: Object, version: str) -> Object:
        metadata = manifest["metadata"]
        patch = {
            "metadata": {
                "labels": metadata["labels"],
                "ownerReferences": metadata["ownerReferences"],
                "resourceVersion": version,  # 409 Conflict if anyone wrote it since
            },
            "status": manifest["status"],
        }
        return await self._api.merge_patch(SPC_POD_STATUSES, key[0], key[1], patch, Lane.BACKGROUND)

    async def remove(self, key: Key) -> bool:
        """Delete the object if it is this node's; False when it is known not to exist.
        ApiConflict: it changed under each of ``ATTEMPTS`` deletes."""
        if key not in self._applied and self.loaded:
            return False  # never written on this node, nor among this node's objects at start
        if key in self._applied and self._applied[key] is None:
            return False
        for _ in range(ATTEMPTS):
            version = self._versions.get(key)
            if version is None:  # not written by this store: look first
                current = await read_status(self._api, key)
                if current is None or node_of(current) != self._node:
                    break  # gone, or another node's now
                version = version_of(current)
            try:
                await self._delete(key, version)
                break
            except ApiNotFound:
                break
            except ApiConflict:  # written since this store saw it: look again
                self._versions.pop(key, None)
        else:
            raise ApiConflict(f"delete pod status {key[0]}/{key[1]}: changed {ATTEMPTS} times")
        self._forget(key)
        return True

    async def _delete(self, key: Key, version: str) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "preconditions": {"resourceVersion": version},
        }
        await self._api.delete(SPC_POD_STATUSES, key[0], key[1], Lane.BACKGROUND, body=body)
