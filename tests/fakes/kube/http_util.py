"""JSON in and out, and the selector predicate every collection verb uses."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from tests.fakes.kube.resources import ResourceType
from tests.fakes.kube.selectors import parse_field_selector, parse_label_selector
from tests.fakes.kube.status import bad_request

Object = dict[str, Any]


def json_response(
    body: Object, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """Compact JSON, as the apiserver writes it."""
    return web.Response(
        text=json.dumps(body, separators=(",", ":")),
        status=status,
        content_type="application/json",
        headers=headers,
    )


async def read_json(request: web.Request) -> Any:
    """The request body as JSON (``None`` if empty); 400 like the apiserver if unparsable."""
    raw = await request.read()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as error:
        raise bad_request(f"couldn't get version/kind; json parse error: {error}") from None


def selector_matcher(rtype: ResourceType, query: Mapping[str, str]) -> Callable[[Object], bool]:
    """``labelSelector`` and ``fieldSelector`` of ``query`` as one predicate (400 if bad)."""
    labels = parse_label_selector(query.get("labelSelector"))
    supported = set(rtype.fields({"metadata": {}}))
    fields = parse_field_selector(query.get("fieldSelector"), supported)
    return lambda obj: (
        labels((obj.get("metadata") or {}).get("labels") or {}) and fields(rtype.fields(obj))
    )
