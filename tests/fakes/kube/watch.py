"""Watch subscriptions: what each open watch stream has queued.

The store offers every committed change to the subscriptions of that resource; a subscription
turns it into the event a real watch with the same selectors would send (with a selector, an
object that stops matching arrives as ``DELETED`` and one that starts matching as ``ADDED``,
like the watch cache does). Tests and faults push control items (bookmark, drop, freeze,
error)."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Object = dict[str, Any]
Predicate = Callable[[Object], bool]

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"
BOOKMARK, ERROR = "BOOKMARK", "ERROR"
DROP = "DROP"  # not on the wire: end the stream (cleanly, or by resetting the connection)
FREEZE = "FREEZE"  # not on the wire: send nothing more, ever, and keep the connection open


@dataclass(frozen=True)
class Change:
    """One committed write: ``obj`` is the state after it (for ``DELETED`` the last state,
    carrying the deletion's resourceVersion), ``old`` the state before (``None`` if added)."""

    rv: int
    key: str
    type: str
    obj: Object
    old: Object | None


@dataclass(frozen=True)
class WatchItem:
    type: str
    obj: Object | None = None  # storage shape; for ERROR a Status body
    rv: int = 0
    initial_events_end: bool = False
    reset: bool = False


@dataclass(eq=False)
class Subscription:
    """One open watch. ``namespace`` ``None`` watches every namespace.

    ``floor`` is the resourceVersion the watch started from (its initial events included):
    like the watch cache's ``cacheWatcher.process``, only changes and bookmarks newer than it
    are sent (the bookmark that ends ``sendInitialEvents`` excepted). A watch from a version
    the store has not reached (etcd restored from an older backup) is therefore accepted and
    stays silent until the store catches up; and a watch of a resource nobody writes hears
    nothing, periodic bookmarks included, until etcd's progress notifications move its watch
    cache past the floor (``Store.cache_version``)."""

    key: str
    namespace: str | None
    matches: Predicate
    bookmarks: bool
    queue: asyncio.Queue[WatchItem] = field(default_factory=asyncio.Queue)
    sent: int = 0  # events written to the stream so far (the HTTP layer counts)
    floor: int = 0

    def in_scope(self, obj: Object) -> bool:
        meta = obj.get("metadata") or {}
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        return self.matches(obj)

    def offer(self, change: Change) -> None:
        if change.rv <= self.floor:
            return
        event = self.event_for(change)
        if event is not None:
            self.queue.put_nowait(event)

    def event_for(self, change: Change) -> WatchItem | None:
        now = self.in_scope(change.obj) if change.type != DELETED else False
        before = change.old is not None and self.in_scope(change.old)
        if change.type == DELETED:
            return WatchItem(DELETED, change.obj, change.rv) if before else None
        if now and before:
            return WatchItem(MODIFIED, change.obj, change.rv)
        if now:
            return WatchItem(ADDED, change.obj, change.rv)
        if before and change.old is not None:
            # Left the selection: the watch cache sends the previous state at this version.
            gone = copy.deepcopy(change.old)
            gone["metadata"]["resourceVersion"] = str(change.rv)
            return WatchItem(DELETED, gone, change.rv)
        return None

    def bookmark(self, rv: int, *, initial_events_end: bool = False) -> None:
        if self.bookmarks and (rv > self.floor or initial_events_end):
            self.queue.put_nowait(WatchItem(BOOKMARK, rv=rv, initial_events_end=initial_events_end))

    def drop(self, *, reset: bool = False) -> None:
        self.queue.put_nowait(WatchItem(DROP, reset=reset))

    def freeze(self) -> None:
        self.queue.put_nowait(WatchItem(FREEZE))

    def error(self, status: Object) -> None:
        self.queue.put_nowait(WatchItem(ERROR, status))
