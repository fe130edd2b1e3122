"""URL → request attributes, as the apiserver's ``RequestInfoFactory`` derives them: API
group and version, namespace, resource, name, subresource and the Kubernetes verb (``list``
vs ``get``, ``watch`` from ``?watch=true`` or the legacy ``/watch/`` prefix, ``deletecollection``
for a DELETE on a collection)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}
_TRUE = ("1", "t", "T", "true", "TRUE", "True")  # Go's strconv.ParseBool


def truthy(value: str | None) -> bool:
    return value in _TRUE


@dataclass(frozen=True)
class RequestInfo:
    method: str
    path: str
    is_resource: bool = False
    verb: str = ""
    group: str = ""
    version: str = ""
    namespace: str | None = None
    resource: str = ""
    name: str = ""
    subresource: str = ""
    legacy_watch: bool = False

    @property
    def watch(self) -> bool:
        return self.verb == "watch"

    @property
    def resource_path(self) -> str:
        """``pods`` or ``pods/status``: how RBAC and the faults name what was called."""
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def parse_request(method: str, path: str, query: Mapping[str, str]) -> RequestInfo:
    parts = [unquote(p) for p in path.strip("/").split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return RequestInfo(method, path, verb=method.lower())
    legacy_watch = bool(rest) and rest[0] == "watch"
    if legacy_watch:
        rest = rest[1:]
    if not rest:
        return RequestInfo(method, path, verb=method.lower(), group=group, version=version)
    namespace: str | None = None
    if rest[0] == "namespaces" and len(rest) > 2 and rest[2] not in ("status", "finalize"):
        namespace, rest = rest[1], rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if resource == "namespaces" and name and namespace is None:
        namespace = ""  # a namespace object itself is cluster-scoped
    verb = _verb(method, bool(name), legacy_watch or truthy(query.get("watch")))
    return RequestInfo(
        method,
        path,
        True,
        verb,
        group,
        version,
        namespace,
        resource,
        name,
        subresource,
        legacy_watch,
    )


def _verb(method: str, named: bool, watch: bool) -> str:
    if method in ("GET", "HEAD"):
        if watch:
            return "watch"
        return "get" if named else "list"
    if method == "DELETE":
        return "delete" if named else "deletecollection"
    return _VERBS.get(method, method.lower())
