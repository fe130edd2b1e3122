"""Secrets for secret sync through the API: implements ``ports_sync.SecretStore``.

Updates are JSON merge patches carrying the ``resourceVersion`` that was read (the API
answers 409 Conflict if the Secret changed since, as controller-runtime's
``MergeFromWithOptimisticLock`` upstream uses), and touch only what sync owns: type, data,
owner references, and the labels and annotations the class sets; everything else on the
Secret (other labels and annotations, finalizers) stays. Deletes carry ``uid`` and
``resourceVersion`` preconditions. All on the background lane: sync never delays kubelet.

A 403 becomes an error that says which setting grants the access (upstream logs the same
hint: with Helm, ``syncSecret.enabled=true`` installs the ClusterRole for Secrets).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Awaitable, Mapping
from typing import Any

from agent.errors import ApiForbidden, ApiNotFound, KubernetesApiError
from agent.k8s.api import KubeApi, Lane, Object
from agent.k8s.resources import SECRETS
from agent.model import MANAGED_LABEL, OwnerReference, SecretObject

FORBIDDEN_HINT = (
    "the agent is not allowed to manage Secrets; if it was installed with Helm, set "
    "syncSecret.enabled=true (it grants the agent's service account the Secret access that "
    "syncing secretObjects needs)"
)


class KubeSecretStore:
    def __init__(self, api: KubeApi, lane: Lane = Lane.BACKGROUND) -> None:
        self._api = api
        self._lane = lane

    async def read(self, namespace: str, name: str) -> SecretObject | None:
        try:
            document = await _forbidden_hint(self._api.get(SECRETS, namespace, name, self._lane))
        except ApiNotFound:
            return None
        return decode_secret(document)

    async def managed_in(self, namespace: str) -> list[SecretObject]:
        found: list[SecretObject] = []
        token = ""
        while True:
            page = await _forbidden_hint(
                self._api.list(
                    SECRETS,
                    self._lane,
                    namespace=namespace,
                    selectors={"labelSelector": f"{MANAGED_LABEL}=true"},
                    continue_token=token,
                )
            )
            found.extend(decode_secret(item) for item in page.get("items") or ())
            token = str((page.get("metadata") or {}).get("continue") or "")
            if not token:
                return found

    async def create(self, secret: SecretObject) -> None:
        await _forbidden_hint(
            self._api.create(SECRETS, secret.namespace, encode_secret(secret), self._lane)
        )

    async def update(self, current: SecretObject, wanted: SecretObject) -> SecretObject:
        patch = merge_patch(current, wanted)
        document = await _forbidden_hint(
            self._api.merge_patch(SECRETS, current.namespace, current.name, patch, self._lane)
        )
        return decode_secret(document)

    async def delete(self, current: SecretObject) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "preconditions": {"uid": current.uid, "resourceVersion": current.resource_version},
        }
        try:
            await _forbidden_hint(
                self._api.delete(SECRETS, current.namespace, current.name, self._lane, body=body)
            )
        except ApiNotFound:
            return


# How kube-apiserver's RBAC authorizer words a denial ("... cannot create resource "secrets" in
# API group ..."). Other 403s on Secrets are no RBAC matter and get no chart hint: a namespace
# being terminated ("unable to create new content in namespace ... because it is being
# terminated"), an admission policy or webhook that denied the request.
_RBAC_DENIAL = re.compile(r'cannot [a-z]+ resource "secrets"')


async def _forbidden_hint(call: Awaitable[Object]) -> Object:
    try:
        result = await call
    except ApiForbidden as err:
        if not _RBAC_DENIAL.search(err.message):
            raise
        raise err.reworded(f"{err.message}: {FORBIDDEN_HINT}") from None
    return result


def decode_secret(document: Mapping[str, Any]) -> SecretObject:
    meta = document.get("metadata") or {}
    return SecretObject(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        type=str(document.get("type") or "Opaque"),
        data={str(k): _decode_value(v) for k, v in (document.get("data") or {}).items()},
        labels=_strings(meta.get("labels")),
        annotations=_strings(meta.get("annotations")),
        owners=tuple(
            _owner(ref) for ref in meta.get("ownerReferences") or () if isinstance(ref, dict)
        ),
        immutable=bool(document.get("immutable")),
        resource_version=str(meta.get("resourceVersion", "")),
        uid=str(meta.get("uid", "")),
    )


def encode_secret(secret: SecretObject) -> Object:
    metadata: Object = {"name": secret.name, "namespace": secret.namespace}
    if secret.labels:
        metadata["labels"] = dict(secret.labels)
    if secret.annotations:
        metadata["annotations"] = dict(secret.annotations)
    if secret.owners:
        metadata["ownerReferences"] = [_owner_json(ref) for ref in secret.owners]
    document: Object = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": secret.type,
        "data": {key: _encode_value(value) for key, value in secret.data.items()},
    }
    if secret.immutable:
        document["immutable"] = True
    return document


def merge_patch(current: SecretObject, wanted: SecretObject) -> Object:
    """RFC 7386 from ``current`` to ``wanted``; ``resourceVersion`` makes it conditional."""
    metadata: Object = {"resourceVersion": current.resource_version}
    for name, old, new in (
        ("labels", current.labels, wanted.labels),
        ("annotations", current.annotations, wanted.annotations),
    ):
        changed = {key: value for key, value in new.items() if old.get(key) != value}
        if changed:
            metadata[name] = changed
    if wanted.owners != current.owners:
        # A list is replaced as a whole by a merge patch; null removes the field.
        metadata["ownerReferences"] = [_owner_json(ref) for ref in wanted.owners] or None
    patch: Object = {"metadata": metadata}
    if wanted.data != current.data:
        data: dict[str, str | None] = {k: None for k in current.data if k not in wanted.data}
        data.update(
            (k, _encode_value(v)) for k, v in wanted.data.items() if current.data.get(k) != v
        )
        patch["data"] = data
    return patch


def _decode_value(value: object) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError) as err:
        raise KubernetesApiError("the API returned a Secret with data that is not base64") from err


def _encode_value(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _strings(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def _owner(ref: Mapping[str, Any]) -> OwnerReference:
    return OwnerReference(
        api_version=str(ref.get("apiVersion", "")),
        kind=str(ref.get("kind", "")),
        name=str(ref.get("name", "")),
        uid=str(ref.get("uid", "")),
        controller=ref.get("controller") is True,
        block_owner_deletion=ref.get("blockOwnerDeletion") is True,
    )


def _owner_json(ref: OwnerReference) -> Object:
    document: Object = {
        "apiVersion": ref.api_version,
        "kind": ref.kind,
        "name": ref.name,
        "uid": ref.uid,
    }
    if ref.controller:
        document["controller"] = True
    if ref.block_owner_deletion:
        document["blockOwnerDeletion"] = True
    return document
