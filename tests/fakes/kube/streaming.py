"""Watch responses: HTTP 200, ``Content-Type: application/json``, chunked, one JSON event per
line (``{"type": "ADDED", "object": {...}}\\n``), as the apiserver's JSON watch encoder
writes them. A resourceVersion older than the compaction window gets a single ``ERROR`` event
carrying a 410 ``Expired`` Status, then the stream ends (the HTTP status stays 200).

The stream ends cleanly at ``timeoutSeconds`` (default: the server's ``watch_timeout``), when a
test drops it, or after a fault's ``drop_after_events``; ``reset`` drops abort the connection
instead; a ``stall`` fault sends the headers and then nothing, never ending (a hung server);
a frozen stream (``Cluster.freeze_watches``) likewise stops in the middle.
With ``allowWatchBookmarks`` a ``BOOKMARK`` carries only ``kind``, ``apiVersion`` and
``metadata.resourceVersion`` (plus the ``k8s.io/initial-events-end`` annotation after the
initial events of ``sendInitialEvents=true``), and is never as old as the version the watch
started from (see ``Subscription.floor``). Periodic bookmarks follow the watch cache's
schedule (:class:`Cadence`) and rule (:func:`_periodic_bookmark`)."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.kube.resources import ResourceType
from tests.fakes.kube.watch import BOOKMARK, DROP, ERROR, FREEZE, Subscription, WatchItem

Object = dict[str, Any]
Encoder = Callable[[Object], Object]
INITIAL_EVENTS_END = "k8s.io/initial-events-end"


@dataclass(frozen=True)
class Cadence:
    """When the watch cache offers a watch a bookmark (``cacheWatcher.nextBookmarkTime``,
    kube-apiserver 1.27 to 1.34): every ``interval`` seconds from the watch's start (a
    minute), the last one ``before_end`` seconds before its timeout (2 s). ``interval``
    ``None``: never on its own (only :meth:`Cluster.bookmark`)."""

    interval: float | None = 60.0
    before_end: float = 2.0

    def next_after(self, now: float, deadline: float) -> float | None:
        """When the next bookmark is due after ``now`` (the watch's start, or the last one)."""
        if self.interval is None:
            return None
        due = min(now + self.interval, deadline - self.before_end)
        return due if due > now else None


def bookmark_object(rtype: ResourceType, version: str, item: WatchItem) -> Object:
    meta: Object = {"resourceVersion": str(item.rv)}
    if not rtype.strategy.custom:
        meta["creationTimestamp"] = None
    if item.initial_events_end:
        meta["annotations"] = {INITIAL_EVENTS_END: "true"}
    return {"kind": rtype.kind, "apiVersion": rtype.api_version(version), "metadata": meta}


async def start_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    return response


async def write_event(response: web.StreamResponse, kind: str, obj: Object) -> None:
    line = json.dumps({"type": kind, "object": obj}, separators=(",", ":")) + "\n"
    await response.write(line.encode())


async def stream_error(request: web.Request, status: Object) -> web.StreamResponse:
    response = await start_stream(request)
    await write_event(response, ERROR, status)
    await response.write_eof()
    return response


async def stream_watch(*args: Any, **kwargs: Any) -> web.StreamResponse:
    """:func:`_stream` ending quietly when the client has gone away."""
    try:
        return await _stream(*args, **kwargs)
    except ConnectionResetError:
        return web.StreamResponse(status=200)


async def _stream(
    request: web.Request,
    subscription: Subscription,
    encode: Encoder,
    bookmark: Callable[[WatchItem], Object],
    cache_version: Callable[[], int],
    *,
    timeout: float,
    cadence: Cadence,
    drop_after_events: int | None = None,
    reset_on_drop: bool = False,
    stall: bool = False,
) -> web.StreamResponse:
    response = await start_stream(request)
    if stall:  # a server that hangs: no event, no end, no FIN, until the client gives up
        await asyncio.Event().wait()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    due = cadence.next_after(loop.time(), deadline)
    while True:
        if drop_after_events is not None and subscription.sent >= drop_after_events:
            return await _drop(request, response, reset_on_drop)
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        wait = remaining if due is None else max(0.0, min(remaining, due - loop.time()))
        try:
            item = await asyncio.wait_for(subscription.queue.get(), wait)
        except TimeoutError:
            if due is not None and loop.time() >= due:
                await _periodic_bookmark(response, subscription, bookmark, cache_version())
                due = cadence.next_after(due, deadline)
            continue
        if item.type == DROP:
            return await _drop(request, response, item.reset)
        if item.type == FREEZE:  # a stuck proxy or server mid-stream: until the client leaves
            await asyncio.Event().wait()
        if item.type == ERROR:
            await write_event(response, ERROR, item.obj or {})
            break
        obj = bookmark(item) if item.type == BOOKMARK else encode(item.obj or {})
        await write_event(response, item.type, obj)
        subscription.sent += 1
    await response.write_eof()
    return response


async def _periodic_bookmark(
    response: web.StreamResponse,
    subscription: Subscription,
    bookmark: Callable[[WatchItem], Object],
    rv: int,
) -> None:
    """The watch cache's rule (``cacheWatcher.process``): the bookmark carries the version
    the resource's cache has reached, and is sent only when that is newer than the watch's
    start; a watch of a resource nobody wrote since gets nothing."""
    if subscription.bookmarks and rv > subscription.floor:
        await write_event(response, BOOKMARK, bookmark(WatchItem(BOOKMARK, rv=rv)))


async def _drop(
    request: web.Request, response: web.StreamResponse, reset: bool
) -> web.StreamResponse:
    """End the stream now. A clean end finishes the chunked body (what a client sees when the
    server times a watch out); a reset sends a TCP RST mid-body (a crashed apiserver: its
    kernel resets the connection). Linger on with a zero timeout makes close send RST, not FIN."""
    if reset and request.transport is not None:
        sock = request.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        request.transport.abort()
        return response
    await response.write_eof()
    return response
