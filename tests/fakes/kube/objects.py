"""Builders for the objects tests seed most: short to call, shaped like what a cluster holds.
Each returns a plain dict for :meth:`Cluster.put` (or a request body)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

Object = dict[str, Any]
CSI_DRIVER = "secrets-store.csi.k8s.io"
SPC_GROUP = "secrets-store.csi.x-k8s.io"
NODE_LABEL = "internal.secrets-store.csi.k8s.io/node-name"


def pod(
    name: str,
    namespace: str = "default",
    *,
    node: str | None = "node-a",
    uid: str | None = None,
    service_account: str = "default",
    phase: str = "Running",
    spc: str | None = None,
    volume: str = "secrets",
    labels: Mapping[str, str] | None = None,
    owner_references: Sequence[Object] = (),
) -> Object:
    """A running pod on ``node`` with, if ``spc`` is given, one inline CSI volume using it."""
    spec: Object = {
        "serviceAccountName": service_account,
        "containers": [{"name": "app", "image": "registry.example/app:1"}],
    }
    if node:
        spec["nodeName"] = node
    if spc:
        spec["volumes"] = [
            {
                "name": volume,
                "csi": {
                    "driver": CSI_DRIVER,
                    "readOnly": True,
                    "volumeAttributes": {"secretProviderClass": spc},
                },
            }
        ]
        spec["containers"][0]["volumeMounts"] = [
            {"name": volume, "mountPath": "/mnt/secrets", "readOnly": True}
        ]
    meta: Object = {"name": name, "namespace": namespace, "uid": uid or str(uuid.uuid4())}
    if labels:
        meta["labels"] = dict(labels)
    if owner_references:
        meta["ownerReferences"] = [dict(ref) for ref in owner_references]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": spec,
        "status": {"phase": phase},
    }


def replica_set(name: str, namespace: str = "default") -> Object:
    """A ReplicaSet (only what owner references and garbage collection need)."""
    meta: Object = {"name": name, "namespace": namespace}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": meta, "spec": {}}


def secret_provider_class(
    name: str,
    namespace: str = "default",
    *,
    provider: str = "vault",
    parameters: Mapping[str, str] | None = None,
    secret_objects: Sequence[Object] = (),
    version: str = "v1",
) -> Object:
    spec: Object = {"provider": provider, "parameters": dict(parameters or {})}
    if secret_objects:
        spec["secretObjects"] = [dict(item) for item in secret_objects]
    return {
        "apiVersion": f"{SPC_GROUP}/{version}",
        "kind": "SecretProviderClass",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def service_account(
    name: str = "default",
    namespace: str = "default",
    *,
    annotations: Mapping[str, str] | None = None,
) -> Object:
    meta: Object = {"name": name, "namespace": namespace}
    if annotations:
        meta["annotations"] = dict(annotations)
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta}


def node(name: str = "node-a", *, labels: Mapping[str, str] | None = None) -> Object:
    """A Node (cluster-scoped) with ``metadata.labels``, as kubelet and the cloud controller
    manager leave them (e.g. ``topology.kubernetes.io/region``)."""
    meta: Object = {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}}
    return {"apiVersion": "v1", "kind": "Node", "metadata": meta, "spec": {}}


def secret(
    name: str,
    namespace: str = "default",
    *,
    string_data: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    type: str = "Opaque",
) -> Object:
    meta: Object = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = dict(labels)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta,
        "type": type,
        "stringData": dict(string_data or {}),
    }


def owner_reference(obj: Object, *, controller: bool | None = None) -> Object:
    """A reference to ``obj`` (as stored: it needs ``metadata.uid``)."""
    ref: Object = {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
    }
    if controller is not None:
        ref["controller"] = controller
    return ref
