"""The WATCH verb: which events a new watch starts with (``resourceVersion`` unset or ``0``:
synthetic ADDED for the current state; N: every change after N, or 410 if compacted, or
silence until the store passes N if it has not reached it; ``sendInitialEvents=true``: the
current state then a bookmark marking its end, or 504 Too large if N is ahead of the store),
and how long it stays open."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.kube.cluster import Cluster
from tests.fakes.kube.keys import FAULT
from tests.fakes.kube.paths import RequestInfo, truthy
from tests.fakes.kube.resources import ResourceType
from tests.fakes.kube.status import (
    ApiError,
    Cause,
    bad_request,
    invalid,
    too_large_resource_version,
)
from tests.fakes.kube.streaming import Cadence, bookmark_object, stream_error, stream_watch

Object = dict[str, Any]


@dataclass
class WatchSettings:
    timeout: float = 1800.0  # server-side end of a watch without timeoutSeconds (seconds)
    cadence: Cadence = field(default_factory=Cadence)  # periodic bookmarks


def _version(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise bad_request(f'Invalid value: "{raw}": resourceVersion must be an integer') from None


def _start(query: Any) -> tuple[int | None, bool]:
    """(version to resume after, or None for "current state first"; sendInitialEvents)."""
    rv = query.get("resourceVersion", "")
    initial = truthy(query.get("sendInitialEvents"))
    if initial and query.get("resourceVersionMatch") != "NotOlderThan":
        cause = Cause(
            "resourceVersionMatch",
            "FieldValueForbidden",
            "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
        )
        raise invalid("ListOptions", "meta.k8s.io", "", [cause])
    return (None if rv in ("", "0") or initial else _version(rv)), initial


def _not_reached(query: Any, current: int) -> ApiError | None:
    """``sendInitialEvents=true`` from a version the store has not reached: the watch cache
    waits 3 s for it, then the stream carries one ERROR event with the 504 "Too large resource
    version" Status (``waitUntilWatchCacheFreshAndForceAllEvents``, ``newErrWatcher``). A
    plain watch from such a version is accepted and stays silent instead."""
    rv = query.get("resourceVersion", "")
    requested = 0 if rv in ("", "0") else _version(rv)
    return too_large_resource_version(requested, current) if requested > current else None


async def serve_watch(
    request: web.Request,
    info: RequestInfo,
    rtype: ResourceType,
    cluster: Cluster,
    settings: WatchSettings,
    *,
    matches: Callable[[Object], bool],
    encode: Callable[[Object], Object],
) -> web.StreamResponse:
    if info.name:  # legacy /watch/.../<name>: a watch of that one object
        name, inner = info.name, matches
        matches = lambda obj: obj["metadata"].get("name") == name and inner(obj)  # noqa: E731
    since, initial = _start(request.query)
    bookmarks = truthy(request.query.get("allowWatchBookmarks"))
    if initial and (behind := _not_reached(request.query, cluster.raw.resource_version)):
        return await stream_error(request, behind.body())
    try:
        subscription = cluster.raw.subscribe(
            rtype, info.namespace, matches, since=since, bookmarks=bookmarks
        )
    except ApiError as error:
        return await stream_error(request, error.body())
    if initial:
        subscription.bookmark(cluster.raw.resource_version, initial_events_end=True)
    fault = request.get(FAULT)
    timeout = float(request.query.get("timeoutSeconds") or settings.timeout)
    try:
        return await stream_watch(
            request,
            subscription,
            encode,
            lambda item: bookmark_object(rtype, info.version, item),
            lambda: cluster.raw.cache_version(rtype.key),
            timeout=timeout,
            cadence=settings.cadence,
            drop_after_events=fault.drop_after_events if fault else None,
            reset_on_drop=bool(fault and fault.reset),
            stall=bool(fault and fault.stall),
        )
    finally:
        cluster.raw.unsubscribe(subscription)
