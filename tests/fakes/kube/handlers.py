"""Resource requests: one method per Kubernetes verb, plus the subresources the agent uses
(``status``, ``pods/binding``, ``serviceaccounts/token``). Bodies are decoded into the
storage shape by the type's strategy and encoded back into the requested version."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.kube.cluster import Cluster
from tests.fakes.kube.deletion import DeleteOptions
from tests.fakes.kube.keys import FAULT
from tests.fakes.kube.listing import envelope, list_page
from tests.fakes.kube.patch import apply_patch
from tests.fakes.kube.paths import RequestInfo, truthy
from tests.fakes.kube.resources import ResourceType
from tests.fakes.kube.selectors import parse_field_selector, parse_label_selector
from tests.fakes.kube.status import (
    ApiError,
    bad_request,
    conflict,
    invalid,
    method_not_allowed,
    not_found,
    path_not_found,
    status_body,
)
from tests.fakes.kube.streaming import bookmark_object, stream_error, stream_watch
from tests.fakes.kube.tokens import TokenIssuer

Object = dict[str, Any]


@dataclass
class WatchSettings:
    timeout: float = 1800.0  # server-side end of a watch without timeoutSeconds (seconds)
    bookmark_interval: float | None = None  # None: bookmarks only when a test asks


def json_response(
    body: Object, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        text=json.dumps(body, separators=(",", ":")),
        status=status,
        content_type="application/json",
        headers=headers,
    )


class ResourceHandlers:
    def __init__(self, cluster: Cluster, issuer: TokenIssuer, watch: WatchSettings) -> None:
        self.cluster = cluster
        self.issuer = issuer
        self.watch_settings = watch

    async def handle(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        rtype = self.cluster.types.find(info.group, info.version, info.resource)
        if rtype is None or not _scope_ok(rtype, info):
            raise path_not_found()
        if info.subresource:
            return await self._subresource(request, info, rtype)
        if info.verb not in rtype.verbs:
            raise method_not_allowed(info.verb, rtype.plural)
        handler: Callable[..., Any] = getattr(self, f"_{info.verb}", None) or _unsupported
        return await handler(request, info, rtype)  # type: ignore[no-any-return]

    # ---- helpers ----

    def _encode(self, rtype: ResourceType, info: RequestInfo, obj: Object) -> Object:
        return rtype.strategy.encode(obj, rtype, info.version)

    def _matcher(self, rtype: ResourceType, query: Mapping[str, str]) -> Callable[[Object], bool]:
        labels = parse_label_selector(query.get("labelSelector"))
        supported = set(rtype.fields({"metadata": {}}))
        fields = parse_field_selector(query.get("fieldSelector"), supported)
        return lambda obj: (
            labels((obj.get("metadata") or {}).get("labels") or {}) and fields(rtype.fields(obj))
        )

    async def _body(self, request: web.Request, info: RequestInfo, rtype: ResourceType) -> Object:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object")
        expected = rtype.api_version(info.version)
        if body.get("apiVersion") not in (None, expected):
            raise bad_request(
                f"the API version in the data ({body['apiVersion']}) does not "
                f"match the expected API version ({expected})"
            )
        if body.get("kind") not in (None, rtype.kind):
            raise bad_request(
                f"the kind in the data ({body['kind']}) does not match the "
                f"expected kind ({rtype.kind})"
            )
        namespace = (body.get("metadata") or {}).get("namespace")
        if rtype.namespaced and namespace and namespace != info.namespace:
            raise bad_request(
                "the namespace of the provided object does not match the "
                "namespace sent on the request"
            )
        causes = rtype.strategy.decode(body, rtype, info.version)
        if causes:
            name = str((body.get("metadata") or {}).get("name") or info.name)
            raise invalid(rtype.kind, rtype.group, name, causes)
        return body

    # ---- verbs ----

    async def _get(
        self, request: web.Request, info: RequestInfo, rtype: ResourceType
    ) -> web.StreamResponse:
        obj = self.cluster.raw.get(rtype, info.namespace or "", info.name)
        if obj is None:
            raise not_found(rtype.plural, rtype.group, info.name)
        return json_response(self._encode(rtype, info, obj))

    async def _list(
        self, request: web.Request, info: RequestInfo, rtype: ResourceType
    ) -> web.StreamResponse:
        query = request.query
        filtered = bool(query.get("labelSelector") or query.get("fieldSelector"))
        page = list_page(
            self.cluster.raw,
            rtype,
            info.namespace,
            query,
            matches=self._matcher(rtype, query),
            filtered=filtered,
        )
        items = [self._encode(rtype, info, obj) for obj in page.items]
        if not rtype.strategy.custom:  # built-in list items carry no kind/apiVersion
            for item in items:
                item.pop("kind", None)
                item.pop("apiVersion", None)
        return json_response(envelope(rtype, info.version, page, items))

    async def _watch(
        self, request: web.Request, info: RequestInfo, rtype: ResourceType
    ) -> web.StreamResponse:
        query = request.query
        matches = self._matcher(rtype, query)
        if info.name:  # legacy /watch/.../name: a watch of that one object
            name, inner = info.name, matches
            matches = lambda obj: obj["metadata"].get("name") == name and inner(obj)  # noqa: E731
        rv = query.get("resourceVersion", "")
        initial = truthy(query.get("sendInitialEvents"))
        if initial and query.get("resourceVersionMatch") != "NotOlderThan":
            raise invalid("ListOptions", "meta.k8s.io", "", [_cause_initial_events()])
        since = None if rv in ("", "0") or initial else _version(rv)
        bookmarks = truthy(query.get("allowWatchBookmarks"))
        try:
            subscription = self.cluster.raw.subscribe(
                rtype, info.namespace, matches, since=since, bookmarks=bookmarks
            )
        except ApiError as error:
            return await stream_error(request, error.body())
        if initial:
            subscription.bookmark(self.cluster.raw.resource_version, initial_events_end=True)
        fault = request.get(FAULT)
        timeout = float(query.get("timeoutSeconds") or self.watch_settings.timeout)
        try:
            return await stream_watch(
                request,
                subscription,
                lambda obj: self._encode(rtype, info, obj),
                lambda item: bookmark_object(rtype, info.version, item),
                lambda: self.cluster.raw.resource_version,
                timeout=timeout,
                bookmark_interval=self.watch_settings.bookmark_interval,
                drop_after_events=fault.drop_after_events if fault else None,
                reset_on_drop=bool(fault and fault.reset),
            )
        finally:
            self.cluster.raw.unsubscribe(subscription)

    async def _create(
        self, request: web.Request, info: RequestInfo, rtype: ResourceType
    ) -> web.StreamResponse:
        body = await self._body(request, info, rtype)
        created = self.cluster.ops.create(rtype, info.namespace or "", body)
        return json_response(self._encode(rtype, info, created), 201)

    async def _update(
        self, request: web.Request, info: RequestInfo, rtype: ResourceType
    ) -> web.StreamResponse:
        body = await self._body(request, info, rtype)
        body_name = (body.get("metadata") or {}).get("name")
        if body_name != info.name:
            raise bad_request(
                f"the name of the object ({body_name}) does not match the name "
                f"on the URL ({info.name})"
            )
        existed = self.cluster.raw.get(rtype, info.namespace or "", info.name) is not None
        updated = self.cluster.ops.update(
            rtype, info.namespace or "", info.name, body, subresource=info.subresource
        )
        return json_response(self._encode(rtype, info, updated), 200 if existed else 201)

    async def _patch(
        self, request: web.Request, info: RequestInfo, rtype: ResourceType
    ) -> web.StreamResponse:
        current = self.cluster.raw.get(rtype, info.namespace or "", info.name)
        if current is None:
            raise not_found(rtype.plural, rtype.group, info.name)
        view = self._encode(rtype, info, current)
        patched = apply_patch(
            view, request.content_type, await request.read(), rtype.strategy.patch_types
        )
        meta = patched.setdefault("metadata", {})
        if meta.get("name") != info.name:
            raise bad_request(
                "metadata.name: Invalid value: the name may not be changed by a patch"
            )
        meta.setdefault("resourceVersion", current["metadata"]["resourceVersion"])
        causes = rtype.strategy.decode(patched, rtype, info.version)
        if causes:
            raise invalid(rtype.kind, rtype.group, info.name, causes)
        updated = self.cluster.ops.update(
            rtype, info.namespace or "", info.name, patched, subresource=info.subresource
        )
        return json_response(self._encode(rtype, info, updated))

    async def _delete(
        self, request: web.Request, info: RequestInfo, rtype: ResourceType
    ) -> web.StreamResponse:
        body = await read_json(request)
        options = DeleteOptions.from_body(
            body if isinstance(body, dict) else {},
            request.query.get("gracePeriodSeconds"),
            request.query.get("propagationPolicy"),
        )
        result = self.cluster.deleter.delete(rtype, info.namespace or "", info.name, options)
        if result.removed and not rtype.strategy.return_deleted_object:
            meta = result.obj["metadata"]
            details: Object = {"name": meta["name"]}
            if rtype.group:
                details["group"] = rtype.group
            details.update({"kind": rtype.plural, "uid": meta["uid"]})
            return json_response(status_body(0, "", "", details, status="Success"))
        return json_response(self._encode(rtype, info, result.obj))

    async def _deletecollection(
        self, request: web.Request, info: RequestInfo, rtype: ResourceType
    ) -> web.StreamResponse:
        matches = self._matcher(rtype, request.query)
        doomed = [o for o in self.cluster.raw.items(rtype, info.namespace) if matches(o)]
        options = DeleteOptions.from_body(
            {}, request.query.get("gracePeriodSeconds"), request.query.get("propagationPolicy")
        )
        deleted = []
        for obj in doomed:
            meta = obj["metadata"]
            try:
                result = self.cluster.deleter.delete(
                    rtype, meta.get("namespace", ""), meta["name"], options
                )
            except ApiError as error:
                if error.code != 404:
                    raise
                continue
            deleted.append(self._encode(rtype, info, result.obj))
        body = {
            "kind": rtype.list_kind,
            "apiVersion": rtype.api_version(info.version),
            "metadata": {"resourceVersion": str(self.cluster.raw.resource_version)},
            "items": deleted,
        }
        return json_response(body)

    # ---- subresources ----

    async def _subresource(
        self, request: web.Request, info: RequestInfo, rtype: ResourceType
    ) -> web.StreamResponse:
        verbs = rtype.subresources.get(info.subresource)
        if verbs is None or not info.name:
            raise path_not_found()
        if info.verb not in verbs:
            raise method_not_allowed(info.verb, info.resource_path)
        if info.subresource == "token":
            body = await read_json(request)
            issued = self.issuer.create(
                self.cluster.raw,
                info.namespace or "",
                info.name,
                body if isinstance(body, dict) else {},
            )
            return json_response(issued, 201)
        if info.subresource == "binding":
            return await self._bind(request, info, rtype)
        handler = {"get": self._get, "update": self._update, "patch": self._patch}[info.verb]
        return await handler(request, info, rtype)

    async def _bind(
        self, request: web.Request, info: RequestInfo, rtype: ResourceType
    ) -> web.StreamResponse:
        """``pods/binding``: what the scheduler does; sets ``spec.nodeName`` once."""
        body = await read_json(request)
        node = ((body or {}).get("target") or {}).get("name") if isinstance(body, dict) else None
        if not node:
            raise bad_request("target.name: Required value")
        pod = self.cluster.raw.get(rtype, info.namespace or "", info.name)
        if pod is None:
            raise not_found(rtype.plural, rtype.group, info.name)
        assigned = (pod.get("spec") or {}).get("nodeName")
        if assigned:
            raise conflict(
                "pods/binding",
                "",
                info.name,
                f'pod {info.name} is already assigned to node "{assigned}"',
            )
        pod["spec"]["nodeName"] = node
        self.cluster.ops.update(rtype, info.namespace or "", info.name, pod, admission=False)
        return json_response(status_body(201, "", "", None, status="Success"), 201)


def _scope_ok(rtype: ResourceType, info: RequestInfo) -> bool:
    if not rtype.namespaced:
        return info.namespace in (None, "")
    if info.namespace is None:  # a namespaced resource addressed without a namespace
        return info.verb in ("list", "watch") and not info.name
    return True


def _version(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise bad_request(f'Invalid value: "{raw}": resourceVersion must be an integer') from None


def _cause_initial_events() -> Any:
    from tests.fakes.kube.status import Cause

    return Cause(
        "resourceVersionMatch",
        "FieldValueForbidden",
        "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
    )


async def _unsupported(
    request: web.Request, info: RequestInfo, rtype: ResourceType
) -> web.StreamResponse:
    raise method_not_allowed(info.verb, rtype.plural)


async def read_json(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as error:
        raise bad_request(f"couldn't get version/kind; json parse error: {error}") from None
