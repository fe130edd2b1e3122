"""Discovery documents (``/api``, ``/api/v1``, ``/apis``, ``/apis/<group>``,
``/apis/<group>/<version>``, ``/version``) in the legacy (unaggregated) format that every
client accepts; a client asking for aggregated discovery gets this and falls back, as it does
against an older server."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from tests.fakes.kube.registry import TypeRegistry
from tests.fakes.kube.resources import ResourceType

Object = dict[str, Any]
SERVER_VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0-fake",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-04-23T00:00:00Z",
    "goVersion": "go1.24.2",
    "compiler": "gc",
    "platform": "linux/amd64",
}
_SUBRESOURCE_KINDS = {
    "token": ("authentication.k8s.io", "v1", "TokenRequest"),
    "binding": ("", "", "Binding"),
}


def _preferred(rtypes: list[ResourceType]) -> str:
    """The storage version: the apiserver prefers the CRD's storage version."""
    return rtypes[0].storage_version


def api_versions(address: str) -> Object:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
    }


def api_group(group: str, rtypes: list[ResourceType]) -> Object:
    versions: list[str] = []
    preferred = _preferred(rtypes)
    for name in [preferred] + [v.name for t in rtypes for v in t.versions]:
        if name not in versions:
            versions.append(name)
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
        "preferredVersion": {"groupVersion": f"{group}/{preferred}", "version": preferred},
    }


def api_group_list(types: TypeRegistry) -> Object:
    groups = [api_group(group, rtypes) for group, rtypes in types.groups().items()]
    for group in groups:
        del group["kind"], group["apiVersion"]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def resource_list(types: TypeRegistry, group: str, version: str) -> Object | None:
    served = [t for t in types if t.group == group and t.version(version)]
    if not served:
        return None
    resources: list[Object] = []
    for rtype in served:
        resources.append(_entry(rtype, version))
        for sub, verbs in rtype.subresources.items():
            resources.append(_subresource_entry(rtype, sub, verbs))
    group_version = f"{group}/{version}" if group else version
    body: Object = {
        "kind": "APIResourceList",
        "groupVersion": group_version,
        "resources": resources,
    }
    if group:
        body["apiVersion"] = "v1"
    return body


def _entry(rtype: ResourceType, version: str) -> Object:
    entry: Object = {
        "name": rtype.plural,
        "singularName": rtype.singular,
        "namespaced": rtype.namespaced,
        "kind": rtype.kind,
        "verbs": list(rtype.verbs),
    }
    if rtype.short_names:
        entry["shortNames"] = list(rtype.short_names)
    if rtype.categories:
        entry["categories"] = list(rtype.categories)
    digest = hashlib.sha256(f"{rtype.key}/{rtype.storage_version}".encode()).digest()
    entry["storageVersionHash"] = base64.b64encode(digest[:8]).decode()
    return entry


def _subresource_entry(rtype: ResourceType, sub: str, verbs: tuple[str, ...]) -> Object:
    entry: Object = {
        "name": f"{rtype.plural}/{sub}",
        "singularName": "",
        "namespaced": rtype.namespaced,
        "kind": rtype.kind,
        "verbs": list(verbs),
    }
    group, version, kind = _SUBRESOURCE_KINDS.get(sub, ("", "", rtype.kind))
    entry["kind"] = kind
    if group:
        entry["group"], entry["version"] = group, version
    return entry


def for_path(types: TypeRegistry, path: str) -> Object | None:
    """``/api/<v>``, ``/apis/<group>`` or ``/apis/<group>/<v>``; ``None`` if not served."""
    parts = path.strip("/").split("/")
    if parts[0] == "api" and len(parts) == 2:
        return resource_list(types, "", parts[1])
    if parts[0] == "apis" and len(parts) == 2:
        group = types.groups().get(parts[1])
        return api_group(parts[1], group) if group else None
    if parts[0] == "apis" and len(parts) == 3:
        return resource_list(types, parts[1], parts[2])
    return None
