"""Built-in resources the agent uses: pods, secrets, service accounts, namespaces, nodes
(core/v1), and ReplicaSets (apps/v1, for pods' owners and garbage collection in secret sync's
tests).
Events live in :mod:`tests.fakes.kube.events`. Each strategy carries the registry rules a
client can observe; everything else about these types is stored as sent."""

from __future__ import annotations

import base64
import binascii
import copy
import re
from collections.abc import Mapping
from typing import Any

from tests.fakes.kube.resources import FieldGetter, ResourceType, Strategy, Version, text_field
from tests.fakes.kube.status import Cause, bad_request

Object = dict[str, Any]
V1 = (Version("v1", storage=True),)
SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
MAX_SECRET_BYTES = 1024 * 1024

# Pod spec fields an update may change (pod validation's "pod updates may not change fields
# other than ..."); everything else in spec is immutable once created.
_POD_MUTABLE = ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds")


class PodStrategy(Strategy):
    return_deleted_object = True

    def field_getters(self) -> Mapping[str, FieldGetter]:
        paths = (
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        )
        return {path: text_field(path) for path in paths}

    def defaults(self, obj: Object) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
        spec.setdefault("terminationGracePeriodSeconds", 30)
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("schedulerName", "default-scheduler")
        spec.setdefault("containers", [])
        obj.setdefault("status", {}).setdefault("phase", "Pending")

    def prepare_create(self, obj: Object) -> None:
        obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}

    def prepare_update(self, new: Object, old: Object, subresource: str) -> None:
        if subresource == "status":
            super().prepare_update(new, old, subresource)
            return
        new["status"] = copy.deepcopy(old.get("status", {}))

    def validate(self, obj: Object, old: Object | None) -> list[Cause]:
        spec = obj.get("spec") or {}
        if old is None:
            if not spec.get("containers"):
                return [Cause("spec.containers", "FieldValueRequired", "Required value")]
            return []
        if _pod_spec_frozen(spec) != _pod_spec_frozen(old.get("spec") or {}):
            message = (
                "Forbidden: pod updates may not change fields other than `spec.containers[*]."
                "image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
                "`spec.tolerations` (only additions to existing tolerations),"
                "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was "
                "previously negative)"
            )
            return [Cause("spec", "FieldValueForbidden", message)]
        return []

    def grace_period(self, obj: Object, requested: int | None) -> int:
        """Pods not on a node, or already finished, go at once; others get the requested
        period or their ``terminationGracePeriodSeconds`` (kubelet then deletes with 0)."""
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
            return 0
        if requested is not None:
            return max(requested, 0)
        return int(spec.get("terminationGracePeriodSeconds", 30))


def _pod_spec_frozen(spec: Object) -> Object:
    frozen = {key: value for key, value in spec.items() if key not in _POD_MUTABLE}
    for key in ("containers", "initContainers"):
        frozen[key] = [
            {k: v for k, v in container.items() if k != "image"}
            for container in spec.get(key) or ()
        ]
    return frozen


class SecretStrategy(Strategy):
    def field_getters(self) -> Mapping[str, FieldGetter]:
        return {"type": text_field("type")}

    def decode(self, obj: Object, rtype: ResourceType, version: str) -> list[Cause]:
        """``stringData`` is write-only: merged into ``data`` (base64) and dropped."""
        data = obj.get("data") or {}
        for key, value in data.items():
            try:
                base64.b64decode(str(value), validate=True)
            except (binascii.Error, ValueError) as error:
                raise bad_request(
                    f'Secret in version "v1" cannot be handled as a Secret: illegal base64 data '
                    f"for key {key}: {error}"
                ) from None
        for key, value in (obj.pop("stringData", None) or {}).items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        if data:
            obj["data"] = data
        return []

    def defaults(self, obj: Object) -> None:
        obj.setdefault("type", "Opaque")

    def validate(self, obj: Object, old: Object | None) -> list[Cause]:
        causes = []
        data = obj.get("data") or {}
        for key in data:
            if not SECRET_KEY.match(key):
                message = (
                    f'Invalid value: "{key}": a valid config key must consist of '
                    "alphanumeric characters, '-', '_' or '.'"
                )
                causes.append(Cause(f"data[{key}]", "FieldValueInvalid", message))
            elif key in (".", "..") or key.startswith(".."):  # validation.hasChDirPrefix
                message = f"Invalid value: \"{key}\": must not be '.' or start with '..'"
                causes.append(Cause(f"data[{key}]", "FieldValueInvalid", message))
        size = sum(len(base64.b64decode(str(v))) for v in data.values())
        if size > MAX_SECRET_BYTES:
            message = f"Too long: may not be more than {MAX_SECRET_BYTES} bytes"
            causes.append(Cause("data", "FieldValueTooLong", message))
        if old is not None:
            causes.extend(_secret_immutability(obj, old))
        return causes


def _secret_immutability(obj: Object, old: Object) -> list[Cause]:
    causes = []
    if obj.get("type") != old.get("type"):
        message = f'Invalid value: "{obj.get("type")}": field is immutable'
        causes.append(Cause("type", "FieldValueInvalid", message))
    if old.get("immutable") and obj.get("data") != old.get("data"):
        message = "Forbidden: field is immutable when `immutable` is set"
        causes.append(Cause("data", "FieldValueForbidden", message))
    return causes


class ServiceAccountStrategy(Strategy):
    return_deleted_object = True


class NamespaceStrategy(Strategy):
    return_deleted_object = True

    def field_getters(self) -> Mapping[str, FieldGetter]:
        return {"status.phase": text_field("status.phase")}

    def defaults(self, obj: Object) -> None:
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj.setdefault("status", {}).setdefault("phase", "Active")


def builtin_types() -> list[ResourceType]:
    status_verbs = ("get", "patch", "update")
    return [
        ResourceType(
            "",
            "pods",
            "Pod",
            "pod",
            V1,
            PodStrategy(),
            short_names=("po",),
            categories=("all",),
            subresources={"status": status_verbs, "binding": ("create",)},
        ),
        ResourceType("", "secrets", "Secret", "secret", V1, SecretStrategy()),
        ResourceType(
            "apps", "replicasets", "ReplicaSet", "replicaset", V1, Strategy(), short_names=("rs",)
        ),
        ResourceType(
            "",
            "serviceaccounts",
            "ServiceAccount",
            "serviceaccount",
            V1,
            ServiceAccountStrategy(),
            short_names=("sa",),
            subresources={"token": ("create",)},
        ),
        ResourceType(
            "",
            "namespaces",
            "Namespace",
            "namespace",
            V1,
            NamespaceStrategy(),
            namespaced=False,
            short_names=("ns",),
            verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
            subresources={"status": status_verbs},
        ),
        ResourceType(
            "",
            "nodes",
            "Node",
            "node",
            V1,
            Strategy(),
            namespaced=False,
            short_names=("no",),
            subresources={"status": status_verbs},
        ),
    ]
