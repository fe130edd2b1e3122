"""Resource requests: one method per Kubernetes verb, plus the subresources the agent uses
(``status``, ``pods/binding``, ``serviceaccounts/token``). Bodies are decoded into the
storage shape by the type's strategy and encoded back into the requested version."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from tests.fakes.kube.cluster import Cluster
from tests.fakes.kube.deletion import DeleteOptions
from tests.fakes.kube.http_util import json_response, read_json, selector_matcher
from tests.fakes.kube.listing import envelope, list_page
from tests.fakes.kube.patch import apply_patch
from tests.fakes.kube.paths import RequestInfo
from tests.fakes.kube.resources import ResourceType
from tests.fakes.kube.status import (
    ApiError,
    bad_request,
    invalid,
    method_not_allowed,
    not_found,
    path_not_found,
    status_body,
)
from tests.fakes.kube.subresources import bind, request_token
from tests.fakes.kube.tokens import TokenIssuer
from tests.fakes.kube.watching import WatchSettings, serve_watch

Object = dict[str, Any]


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
        handler: Callable[..., Awaitable[web.StreamResponse]]
        handler = getattr(self, f"_{info.verb}", None) or _unsupported
        return await handler(request, info, rtype)

    async def _watch(
        self, request: web.Request, info: RequestInfo, rtype: ResourceType
    ) -> web.StreamResponse:
        return await serve_watch(
            request,
            info,
            rtype,
            self.cluster,
            self.watch_settings,
            matches=selector_matcher(rtype, request.query),
            encode=lambda obj: self._encode(rtype, info, obj),
        )

    # ---- helpers ----

    def _encode(self, rtype: ResourceType, info: RequestInfo, obj: Object) -> Object:
        return rtype.strategy.encode(obj, rtype, info.version)

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
            matches=selector_matcher(rtype, query),
            filtered=filtered,
        )
        items = [self._encode(rtype, info, obj) for obj in page.items]
        if not rtype.strategy.custom:  # built-in list items carry no kind/apiVersion
            for item in items:
                item.pop("kind", None)
                item.pop("apiVersion", None)
        return json_response(envelope(rtype, info.version, page, items))

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
        matches = selector_matcher(rtype, request.query)
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
            return await request_token(request, info, self.cluster, self.issuer)
        if info.subresource == "binding":
            return await bind(request, info, rtype, self.cluster)
        handler = {"get": self._get, "update": self._update, "patch": self._patch}[info.verb]
        return await handler(request, info, rtype)


def _scope_ok(rtype: ResourceType, info: RequestInfo) -> bool:
    if not rtype.namespaced:
        return info.namespace in (None, "")
    if info.namespace is None:  # a namespaced resource addressed without a namespace
        return info.verb in ("list", "watch") and not info.name
    return True


async def _unsupported(
    request: web.Request, info: RequestInfo, rtype: ResourceType
) -> web.StreamResponse:
    raise method_not_allowed(info.verb, rtype.plural)
