"""SecretProviderClassPodStatus objects (upstream §6, §10.2) ↔ the model's PodStatus."""

from __future__ import annotations

from collections.abc import Mapping

from agent.model import ObjectVersion, PodStatus

API_VERSION = "secrets-store.csi.x-k8s.io/v1"
KIND = "SecretProviderClassPodStatus"
NODE_LABEL = "internal.secrets-store.csi.k8s.io/node-name"


def to_manifest(status: PodStatus) -> dict[str, object]:
    objects = sorted(status.objects, key=lambda o: o.id)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": status.name,
            "namespace": status.namespace,
            "labels": {NODE_LABEL: status.node_name},
            # As upstream: owned by the pod, so a real cluster would garbage-collect it.
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Pod", "name": status.pod_name, "uid": status.pod_uid}
            ],
        },
        "status": {
            "podName": status.pod_name,
            "secretProviderClassName": status.spc_name,
            "mounted": status.mounted,
            "targetPath": status.target_path,
            "objects": [{"id": o.id, "version": o.version} for o in objects],
        },
    }


def from_manifest(document: object) -> PodStatus:
    """Inverse of :func:`to_manifest`; raises ValueError naming the first bad field."""
    doc = _mapping(document, "document")
    if doc.get("kind") != KIND:
        raise ValueError(f"kind must be {KIND}")
    meta = _mapping(doc.get("metadata"), "metadata")
    body = _mapping(doc.get("status"), "status")
    labels = _mapping(meta.get("labels") or {}, "metadata.labels")
    owners = meta.get("ownerReferences") or [{}]
    owner = _mapping(owners[0] if isinstance(owners, list) and owners else {}, "ownerReferences")
    objects = body.get("objects") or []
    if not isinstance(objects, list):
        raise ValueError("status.objects must be a list")
    return PodStatus(
        name=_text(meta, "name", "metadata"),
        namespace=_text(meta, "namespace", "metadata"),
        pod_name=_text(body, "podName", "status"),
        pod_uid=str(owner.get("uid") or ""),
        spc_name=_text(body, "secretProviderClassName", "status"),
        target_path=_text(body, "targetPath", "status"),
        node_name=str(labels.get(NODE_LABEL) or ""),
        mounted=body.get("mounted") is True,
        objects=tuple(_object_version(o) for o in objects),
    )


def _object_version(value: object) -> ObjectVersion:
    item = _mapping(value, "status.objects[]")
    return ObjectVersion(
        id=_text(item, "id", "status.objects[]"), version=str(item.get("version") or "")
    )


def _mapping(value: object, what: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{what} must be a mapping")
    return value


def _text(mapping: Mapping[str, object], key: str, where: str) -> str:
    value = mapping.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}.{key} must be a non-empty string")
    return value
