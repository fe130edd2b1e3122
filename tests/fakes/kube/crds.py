"""Custom resources from ``CustomResourceDefinition`` manifests (``apiextensions.k8s.io/v1``):
the fake serves exactly the versions, schemas and printer columns the chart installs, so the
two cannot drift apart. The rules are the apiserver's ``customresource`` registry: generation
1 on create and +1 on any change outside ``metadata``, pruning and type validation per version
schema, 422 for an update without ``resourceVersion``, a ``Status`` (not the object) returned
by delete, merge and JSON patch only (strategic merge is 415)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from tests.fakes.kube.resources import JSON_PATCH, MERGE_PATCH, ResourceType, Strategy, Version
from tests.fakes.kube.schema import prune_and_validate
from tests.fakes.kube.status import Cause

Object = dict[str, Any]

CHART_CRDS = Path(__file__).resolve().parents[3] / "charts" / "secrets-store-agent" / "crds"


class CustomResourceStrategy(Strategy):
    allow_unconditional_update = False
    custom = True
    patch_types = (JSON_PATCH, MERGE_PATCH)

    def __init__(self, status_subresource: bool) -> None:
        self.status_subresource = status_subresource

    def decode(self, obj: Object, rtype: ResourceType, version: str) -> list[Cause]:
        schema = _schema(rtype, version)
        causes = prune_and_validate(obj, schema) if schema else []
        obj["apiVersion"] = rtype.api_version(rtype.storage_version)
        return causes

    def encode(self, obj: Object, rtype: ResourceType, version: str) -> Object:
        out = super().encode(obj, rtype, version)
        schema = _schema(rtype, version)
        if schema:  # pruning on read: a field only the storage version knows is not served
            prune_and_validate(out, schema)
        return out

    def prepare_create(self, obj: Object) -> None:
        if self.status_subresource:
            obj.pop("status", None)

    def prepare_update(self, new: Object, old: Object, subresource: str) -> None:
        if subresource == "status" or not self.status_subresource:
            super().prepare_update(new, old, subresource)
            return
        if "status" in old:
            new["status"] = copy.deepcopy(old["status"])
        else:
            new.pop("status", None)

    def defaults(self, obj: Object) -> None:
        obj["metadata"].setdefault("generation", 1)


def bump_generation(new: Object, old: Object) -> None:
    """Custom resources: any change outside ``metadata`` bumps ``metadata.generation``."""
    outside = [key for key in set(new) | set(old) if key != "metadata"]
    if any(new.get(key) != old.get(key) for key in outside):
        new["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
    else:
        new["metadata"]["generation"] = old["metadata"].get("generation", 1)


def _schema(rtype: ResourceType, version: str) -> Object | None:
    served = rtype.version(version)
    return served.schema if served else None


def resource_type_from_crd(crd: Object) -> ResourceType:
    """One :class:`ResourceType` serving every ``served: true`` version of the CRD."""
    if crd.get("kind") != "CustomResourceDefinition":
        raise ValueError(f"not a CustomResourceDefinition: {crd.get('kind')!r}")
    spec = crd["spec"]
    names = spec["names"]
    versions = tuple(_version(v) for v in spec["versions"] if v.get("served"))
    status = any("status" in (v.get("subresources") or {}) for v in spec["versions"])
    subresources = {"status": ("get", "patch", "update")} if status else {}
    return ResourceType(
        group=spec["group"],
        plural=names["plural"],
        kind=names["kind"],
        singular=names.get("singular", names["kind"].lower()),
        versions=versions,
        strategy=CustomResourceStrategy(status),
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        short_names=tuple(names.get("shortNames") or ()),
        categories=tuple(names.get("categories") or ()),
        subresources=subresources,
    )


def _version(raw: Object) -> Version:
    warning = raw.get("deprecationWarning")
    return Version(
        name=raw["name"],
        storage=bool(raw.get("storage")),
        deprecated=bool(raw.get("deprecated")),
        deprecation_warning=warning,
        schema=(raw.get("schema") or {}).get("openAPIV3Schema"),
        printer_columns=tuple(raw.get("additionalPrinterColumns") or ()),
    )


def load_crds(paths: list[Path] | None = None) -> list[ResourceType]:
    """Every CRD in the given files or directories (default: the chart's ``crds/``)."""
    files: list[Path] = []
    for path in paths or [CHART_CRDS]:
        files.extend(sorted(path.glob("*.yaml")) if path.is_dir() else [path])
    types = []
    for file in files:
        for document in yaml.safe_load_all(file.read_text()):
            if document:
                types.append(resource_type_from_crd(document))
    return types
