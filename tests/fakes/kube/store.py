"""The fake's etcd: every object once, in its storage version, under one cluster-wide
resourceVersion counter that every write bumps (like etcd's revision), plus the change history
that watches resume from and paged lists read their snapshot from.

Writes go through :meth:`Store.commit`, which stamps the new resourceVersion, records the
change and offers it to every open watch of that resource. Each resource also has the version
its watch cache has reached (:meth:`Store.cache_version`), what kube-apiserver's periodic
bookmarks carry: that of the resource's last change, or the store's at etcd's last progress
notification (:meth:`Store.progress`), whichever is newer. ``compacted`` is the oldest version
still resumable: a watch or ``continue`` from an older one gets 410 Gone. History is compacted
when it exceeds ``history_limit`` changes or when a test calls :meth:`compact`.

This layer knows no HTTP and no admission rules; see ``operations`` for create/update/delete
as the apiserver performs them and ``seeding`` for the test-facing helpers.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tests.fakes.kube.meta import Clock, utc_now
from tests.fakes.kube.registry import TypeRegistry
from tests.fakes.kube.resources import ResourceType
from tests.fakes.kube.status import expired
from tests.fakes.kube.watch import ADDED, DELETED, Change, Predicate, Subscription

Object = dict[str, Any]
ObjectKey = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped objects


def object_key(obj: Object) -> ObjectKey:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def etcd_key(key: ObjectKey) -> str:
    """``namespace/name`` (or ``name``): the order etcd lists keys in, and what ``continue``
    tokens resume after."""
    return "/".join(part for part in key if part)


@dataclass(frozen=True)
class Backup:
    """An etcd snapshot (``etcdctl snapshot save``): objects, revision and history."""

    objects: dict[str, dict[ObjectKey, Object]]
    resource_version: int
    compacted: int
    history: tuple[Change, ...]


class Store:
    def __init__(
        self, types: TypeRegistry, *, history_limit: int = 10_000, clock: Clock = utc_now
    ) -> None:
        self.types = types
        self.history_limit = history_limit
        self.clock = clock
        self.resource_version = 0
        self.compacted = 0
        self._objects: dict[str, dict[ObjectKey, Object]] = {}
        self._history: list[Change] = []
        self._subscriptions: dict[str, list[Subscription]] = {}
        self._subscribed = asyncio.Event()  # set (and replaced) whenever a watch opens
        self._changed_at: dict[str, int] = {}  # resource key -> its last change's version
        self._progress_at = 0  # the store's version at etcd's last progress notification

    # ---- reads (storage shape, copies) ----

    def get(self, rtype: ResourceType, namespace: str, name: str) -> Object | None:
        found = self._objects.get(rtype.key, {}).get((namespace if rtype.namespaced else "", name))
        return copy.deepcopy(found) if found is not None else None

    def items(self, rtype: ResourceType, namespace: str | None = None) -> list[Object]:
        """Current objects sorted by (namespace, name), like etcd's key order."""
        return self._sorted(self._objects.get(rtype.key, {}), namespace)

    def count(self, rtype: ResourceType, namespace: str | None = None) -> int:
        """How many objects there are now (no copies: cheap enough to poll)."""
        keys = self._objects.get(rtype.key, {})
        return sum(1 for key in keys if namespace is None or key[0] == namespace)

    def snapshot(self, rtype: ResourceType, rv: int, namespace: str | None = None) -> list[Object]:
        """The objects as they were at ``rv`` (410 if that version is compacted)."""
        if rv < self.compacted:
            raise expired(f"too old resource version: {rv} ({self.compacted})")
        state = dict(self._objects.get(rtype.key, {}))
        for change in reversed(self._history):
            if change.rv <= rv:
                break
            if change.key != rtype.key:
                continue
            key = object_key(change.obj)
            if change.old is None:
                state.pop(key, None)
            else:
                state[key] = change.old
        return self._sorted(state, namespace)

    @staticmethod
    def _sorted(objects: dict[ObjectKey, Object], namespace: str | None) -> list[Object]:
        return [
            copy.deepcopy(objects[key])
            for key in sorted(objects, key=etcd_key)
            if namespace is None or key[0] == namespace
        ]

    def all_objects(self) -> Iterable[tuple[str, Object]]:
        """(storage key, object) for everything stored; used by garbage collection."""
        for key, objects in list(self._objects.items()):
            for obj in list(objects.values()):
                yield key, obj

    # ---- the one write path ----

    def commit(self, rtype: ResourceType, kind: str, obj: Object, old: Object | None) -> Object:
        """Store ``obj`` (``kind``: ADDED/MODIFIED/DELETED) at the next resourceVersion and
        tell the watches. Returns a copy of what was stored (or deleted)."""
        self.resource_version += 1
        stored = copy.deepcopy(obj)
        stored["metadata"]["resourceVersion"] = str(self.resource_version)
        bucket = self._objects.setdefault(rtype.key, {})
        if kind == DELETED:
            bucket.pop(object_key(stored), None)
        else:
            bucket[object_key(stored)] = stored
        change = Change(self.resource_version, rtype.key, kind, stored, copy.deepcopy(old))
        self._changed_at[rtype.key] = self.resource_version
        self._history.append(change)
        if len(self._history) > self.history_limit:
            dropped = self._history.pop(0)
            self.compacted = dropped.rv
        for subscription in self._subscriptions.get(rtype.key, ()):
            subscription.offer(change)
        return copy.deepcopy(stored)

    def compact(self, rv: int | None = None) -> int:
        """Forget history up to ``rv`` (default: everything); older versions now get 410."""
        target = self.resource_version if rv is None else rv
        self._history = [change for change in self._history if change.rv > target]
        self.compacted = max(self.compacted, target)
        return self.compacted

    # ---- the watch caches' versions ----

    def cache_version(self, key: str) -> int:
        """The version the watch cache of resource ``key`` has reached (the cacher's
        ``lastProcessedResourceVersion``): it moves with that resource's changes, and with
        etcd's progress notifications, never with another resource's writes alone."""
        return max(self._changed_at.get(key, 0), self._progress_at)

    def progress(self) -> None:
        """etcd's progress notification to every watch cache (etcd sends one every 10 minutes
        by default, and when the apiserver asks while a read waits for its cache): each
        cache reaches the store's current version."""
        self._progress_at = self.resource_version

    # ---- etcd backup and restore ----

    def backup(self) -> Backup:
        return Backup(
            copy.deepcopy(self._objects),
            self.resource_version,
            self.compacted,
            tuple(self._history),
        )

    def restore(
        self, backup: Backup, *, bump_revision: int = 0, mark_compacted: bool = False
    ) -> int:
        """``etcdutl snapshot restore`` then a restart of etcd and the apiservers: the store
        (and its resourceVersion) go back to ``backup``; every open watch is cut. Watches
        resuming from a newer version then hear nothing until the store passes it (watch
        cache semantics). etcdutl's ``--bump-revision`` adds to the revision and
        ``--mark-compacted`` compacts everything up to it, so those watches get 410 instead
        (the restore etcd's docs recommend for Kubernetes). Returns the new resourceVersion."""
        self._objects = copy.deepcopy(backup.objects)
        self._history = list(backup.history)
        self.resource_version = backup.resource_version + bump_revision
        self.compacted = self.resource_version if mark_compacted else backup.compacted
        self._changed_at.clear()  # the caches list the restored store again
        self.progress()
        for subscription in self.subscriptions():
            subscription.drop(reset=True)
            self.unsubscribe(subscription)
        return self.resource_version

    # ---- watches ----

    def subscribe(
        self,
        rtype: ResourceType,
        namespace: str | None,
        matches: Predicate,
        *,
        since: int | None,
        bookmarks: bool,
    ) -> Subscription:
        """Open a watch. ``since=None``: synthetic ADDED for every current object first
        ("get state and start at most recent"); otherwise every change after ``since``
        (410 when compacted). Registration and replay happen without yielding, so no change
        can fall between them."""
        subscription = Subscription(rtype.key, namespace, matches, bookmarks)
        if since is None:
            for obj in self.items(rtype, namespace):
                if subscription.in_scope(obj):
                    rv = int(obj["metadata"]["resourceVersion"])
                    subscription.offer(Change(rv, rtype.key, ADDED, obj, None))
        else:
            if since < self.compacted:
                raise expired(f"too old resource version: {since} ({self.compacted})")
            for change in self._history:
                if change.key == rtype.key and change.rv > since:
                    subscription.offer(change)
        subscription.floor = self.resource_version if since is None else since
        self._subscriptions.setdefault(rtype.key, []).append(subscription)
        self._subscribed.set()
        self._subscribed = asyncio.Event()
        return subscription

    async def wait_for_subscription(self, key: str | None, count: int) -> None:
        """Return once at least ``count`` watches (of ``key``, or of anything) are open."""
        while len(self.subscriptions(key)) < count:
            await self._subscribed.wait()

    def unsubscribe(self, subscription: Subscription) -> None:
        listeners = self._subscriptions.get(subscription.key, [])
        if subscription in listeners:
            listeners.remove(subscription)

    def subscriptions(self, key: str | None = None) -> list[Subscription]:
        if key is not None:
            return list(self._subscriptions.get(key, ()))
        return [s for subs in self._subscriptions.values() for s in subs]
