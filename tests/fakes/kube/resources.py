"""What the fake serves: one :class:`ResourceType` per REST resource (``pods``, ``events`` in
two groups, each CRD), each with its served versions and its :class:`Strategy` (the per-type
rules of the real registry: defaults, validation, graceful deletion, what a delete returns).

Objects are stored once per ``storage_key`` in the *storage* version; a request in another
version is converted on the way in and out (CRDs: ``apiVersion`` only, as with
``conversion: None``; events: core/v1 <-> events.k8s.io/v1 field mapping).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.kube.status import Cause

Object = dict[str, Any]
FieldGetter = Callable[[Object], str]

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


def dig(obj: Any, path: str) -> Any:
    """``dig(pod, "spec.nodeName")``; ``None`` when any step is missing."""
    for part in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def text_field(path: str) -> FieldGetter:
    """A field-selector value as the apiserver renders it: absent fields compare as ``""``,
    booleans as ``true``/``false``."""

    def get(obj: Object) -> str:
        value = dig(obj, path)
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    return get


@dataclass(frozen=True)
class Version:
    """One served version. ``schema`` is a CRD's ``openAPIV3Schema`` (``None`` for built-ins)."""

    name: str
    storage: bool = False
    deprecated: bool = False
    deprecation_warning: str | None = None
    schema: Object | None = None
    printer_columns: tuple[Object, ...] = ()


class Strategy:
    """The registry rules of one resource type; the defaults are the generic store's.

    Every hook works on plain JSON objects in the *storage* shape and raises
    :class:`~tests.fakes.kube.status.ApiError` (usually ``invalid``) to refuse."""

    return_deleted_object = False  # pods, serviceaccounts, namespaces: True (genericregistry)
    allow_unconditional_update = True  # custom resources: False (422 without resourceVersion)
    allow_create_on_update = False  # events: True
    custom = False  # CRs keep kind/apiVersion on list items and get metadata.generation
    patch_types: tuple[str, ...] = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH)

    def field_getters(self) -> Mapping[str, FieldGetter]:
        """Extra ``fieldSelector`` labels beyond ``metadata.name`` / ``metadata.namespace``."""
        return {}

    def decode(self, obj: Object, rtype: ResourceType, version: str) -> list[Cause]:
        """A request body in ``version`` → storage shape (in place); causes if invalid."""
        return []

    def encode(self, obj: Object, rtype: ResourceType, version: str) -> Object:
        """Storage shape → the response in ``version`` (a copy)."""
        out = copy.deepcopy(obj)
        out["apiVersion"] = rtype.api_version(version)
        out["kind"] = rtype.kind
        return out

    def prepare_create(self, obj: Object) -> None:
        """Server-set fields on create through the API (e.g. a pod's status)."""

    def prepare_update(self, new: Object, old: Object, subresource: str) -> None:
        """Fields an update may not touch are copied back from ``old``."""
        if subresource == "status":
            status = new.get("status")
            new.clear()
            new.update(copy.deepcopy(old))
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status

    def defaults(self, obj: Object) -> None:
        """Defaults applied to every write, seeded objects included."""

    def validate(self, obj: Object, old: Object | None) -> list[Cause]:
        return []

    def grace_period(self, obj: Object, requested: int | None) -> int:
        """Seconds of graceful deletion (0: delete now). Only pods have one."""
        return 0


@dataclass(frozen=True)
class ResourceType:
    """A REST resource (``/apis/<group>/<version>/namespaces/<ns>/<plural>``)."""

    group: str
    plural: str
    kind: str
    singular: str
    versions: tuple[Version, ...]
    strategy: Strategy
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    storage_key: str = ""  # defaults to "<plural>.<group>"; events share one across groups

    @property
    def key(self) -> str:
        return self.storage_key or (f"{self.plural}.{self.group}" if self.group else self.plural)

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def storage_version(self) -> str:
        return next((v.name for v in self.versions if v.storage), self.versions[0].name)

    def api_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version

    def version(self, name: str) -> Version | None:
        return next((v for v in self.versions if v.name == name), None)

    def fields(self, obj: Object) -> dict[str, str]:
        """The object's field-selector labels (``GetAttrs``)."""
        meta = obj.get("metadata") or {}
        values = {"metadata.name": str(meta.get("name", ""))}
        if self.namespaced:
            values["metadata.namespace"] = str(meta.get("namespace", ""))
        for label, getter in self.strategy.field_getters().items():
            values[label] = getter(obj)
        return values

    def names(self) -> Iterable[str]:
        """Every spelling a test may use to name this type."""
        yield from (self.plural, self.singular, self.kind, self.kind.lower(), *self.short_names)
        if self.group:
            yield f"{self.plural}.{self.group}"
