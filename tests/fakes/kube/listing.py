"""LIST semantics: ``resourceVersion`` / ``resourceVersionMatch``, ``limit`` / ``continue``
pagination over a consistent snapshot, and the list envelope (``kind: PodList``,
``metadata.resourceVersion``, ``continue``, ``remainingItemCount``).

- no ``resourceVersion``: the current state (a consistent read);
- ``resourceVersion=0``: any state; served from "the cache", so ``limit`` is ignored, as the
  apiserver's watch cache did for years: a client must not rely on getting pages there;
- ``resourceVersion=N``: state at least as new as N (504 "Too large resource version" if the
  server has not reached N); with ``resourceVersionMatch=Exact`` exactly N (410 if compacted);
- ``continue``: the next page of the snapshot the first page was cut from (410 Expired with a
  fresh, inconsistent ``continue`` token in the Status metadata once that snapshot is
  compacted, like etcd).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tests.fakes.kube.resources import ResourceType
from tests.fakes.kube.status import (
    CONTINUE_EXPIRED,
    ApiError,
    bad_request,
    expired,
    too_large_resource_version,
)
from tests.fakes.kube.store import Store, etcd_key, object_key

Object = dict[str, Any]
Matcher = Callable[[Object], bool]


@dataclass(frozen=True)
class Page:
    items: list[Object]
    resource_version: int
    continue_token: str = ""
    remaining: int | None = None


def encode_continue(rv: int, start: str) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start}, separators=(",", ":"))
    return base64.b64encode(raw.encode()).decode()


def decode_continue(token: str) -> tuple[int, str]:
    try:
        data = json.loads(base64.b64decode(token, validate=True))
        return int(data["rv"]), str(data["start"])
    except (ValueError, KeyError, TypeError):
        raise bad_request("continue key is not valid: illegal base64 data or JSON") from None


def _int_version(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise bad_request(f'Invalid value: "{raw}": resourceVersion must be an integer') from None


def list_page(
    store: Store,
    rtype: ResourceType,
    namespace: str | None,
    query: Mapping[str, str],
    *,
    matches: Matcher,
    filtered: bool,
) -> Page:
    rv_param = query.get("resourceVersion", "")
    match = query.get("resourceVersionMatch", "")
    token = query.get("continue", "")
    limit = int(query.get("limit") or 0)
    if match and not rv_param:
        raise bad_request("resourceVersionMatch is forbidden unless resourceVersion is provided")
    if token and rv_param:
        raise bad_request("specifying resource version is not allowed when using continue")
    start = ""
    if token:
        rv, start = decode_continue(token)
        if rv < store.compacted:
            fresh = encode_continue(store.resource_version, start)
            raise expired(CONTINUE_EXPIRED, {"continue": fresh})
    elif rv_param in ("", "0"):
        rv = store.resource_version
        if rv_param == "0":
            limit = 0
    else:
        rv = _int_version(rv_param)
        if rv > store.resource_version:
            raise too_large_resource_version(rv, store.resource_version)
        if match != "Exact":
            rv = store.resource_version
    items = _state(store, rtype, rv, namespace)
    items = [obj for obj in items if _after(obj, start) and matches(obj)]
    if limit <= 0 or len(items) <= limit:
        return Page(items, rv)
    page, rest = items[:limit], items[limit:]
    last = etcd_key(object_key(page[-1]))
    return Page(page, rv, encode_continue(rv, last + "\x00"), None if filtered else len(rest))


def _state(store: Store, rtype: ResourceType, rv: int, namespace: str | None) -> list[Object]:
    if rv == store.resource_version:
        return store.items(rtype, namespace)
    try:
        return store.snapshot(rtype, rv, namespace)
    except ApiError as error:
        error.message = f"too old resource version: {rv} ({store.compacted})"
        raise


def _after(obj: Object, start: str) -> bool:
    if not start:
        return True
    return etcd_key(object_key(obj)) >= start


def envelope(rtype: ResourceType, version: str, page: Page, items: list[Object]) -> Object:
    meta: Object = {"resourceVersion": str(page.resource_version)}
    if page.continue_token:
        meta["continue"] = page.continue_token
    if page.remaining is not None:
        meta["remainingItemCount"] = page.remaining
    return {
        "kind": rtype.list_kind,
        "apiVersion": rtype.api_version(version),
        "metadata": meta,
        "items": items,
    }
