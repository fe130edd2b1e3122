"""Subresources other than ``status``: ``pods/binding`` (what the scheduler calls to put a pod
on a node) and ``serviceaccounts/token`` (TokenRequest, see ``tokens``)."""

from __future__ import annotations

from aiohttp import web

from tests.fakes.kube.cluster import Cluster
from tests.fakes.kube.http_util import json_response, read_json
from tests.fakes.kube.paths import RequestInfo
from tests.fakes.kube.resources import ResourceType
from tests.fakes.kube.status import bad_request, conflict, not_found, status_body
from tests.fakes.kube.tokens import TokenIssuer


async def bind(
    request: web.Request, info: RequestInfo, rtype: ResourceType, cluster: Cluster
) -> web.StreamResponse:
    """Sets ``spec.nodeName`` once; a second binding is 409 Conflict."""
    body = await read_json(request)
    node = ((body or {}).get("target") or {}).get("name") if isinstance(body, dict) else None
    if not node:
        raise bad_request("target.name: Required value")
    pod = cluster.raw.get(rtype, info.namespace or "", info.name)
    if pod is None:
        raise not_found(rtype.plural, rtype.group, info.name)
    assigned = (pod.get("spec") or {}).get("nodeName")
    if assigned:
        why = f'pod {info.name} is already assigned to node "{assigned}"'
        raise conflict("pods/binding", "", info.name, why)
    pod["spec"]["nodeName"] = node
    cluster.ops.update(rtype, info.namespace or "", info.name, pod, admission=False)
    return json_response(status_body(201, "", "", None, status="Success"), 201)


async def request_token(
    request: web.Request, info: RequestInfo, cluster: Cluster, issuer: TokenIssuer
) -> web.StreamResponse:
    body = await read_json(request)
    issued = issuer.create(
        cluster.raw, info.namespace or "", info.name, body if isinstance(body, dict) else {}
    )
    return json_response(issued, 201)
