"""Removal of an object and what follows it: a deleted namespace's contents go with it (the
namespace controller's job, done at once) and ownerReference garbage collection runs.

Garbage collection is synchronous (documented in ``operations``): a real cluster's collector
runs asynchronously a moment later; here dependents disappear in the same call, after the
owner's ``DELETED`` event, in (namespace, name) order. With ``enabled=False`` nothing happens
until a test calls :meth:`GarbageCollector.collect`."""

from __future__ import annotations

import copy
from typing import Any

from tests.fakes.kube.meta import owner_uids
from tests.fakes.kube.resources import ResourceType
from tests.fakes.kube.store import Store
from tests.fakes.kube.watch import DELETED, MODIFIED

Object = dict[str, Any]
NAMESPACES = "namespaces"


class GarbageCollector:
    def __init__(self, store: Store, *, enabled: bool = True) -> None:
        self.store = store
        self.enabled = enabled

    def _type_of(self, key: str) -> ResourceType:
        return self.store.types.by_key(key)[0]

    def remove(self, rtype: ResourceType, current: Object, last: Object | None = None) -> Object:
        """Delete ``current`` now (``last``: the state to report, e.g. with finalizers just
        removed), then clean up what hung off it."""
        gone = self.store.commit(rtype, DELETED, last or current, current)
        if rtype.plural == NAMESPACES and not rtype.group:
            for key, obj in list(self.store.all_objects()):
                if obj["metadata"].get("namespace") == current["metadata"]["name"]:
                    self.remove(self._type_of(key), obj)
        if self.enabled:
            self.collect()
        return gone

    def orphan(self, owner_uid: str) -> None:
        """``propagationPolicy: Orphan``: dependents forget the owner and stay."""
        for key, obj in list(self.store.all_objects()):
            if owner_uid in owner_uids(obj):
                self._drop_owner_refs(key, obj, {owner_uid})

    def delete_dependents(self, owner_uid: str) -> None:
        """``propagationPolicy: Foreground``: dependents go before the owner."""
        for key, obj in list(self.store.all_objects()):
            if owner_uid in owner_uids(obj):
                self.remove(self._type_of(key), obj)

    def _drop_owner_refs(self, key: str, obj: Object, dead: set[str]) -> None:
        updated = copy.deepcopy(obj)
        refs = updated["metadata"].get("ownerReferences") or []
        kept = [ref for ref in refs if str(ref.get("uid")) not in dead]
        if kept:
            updated["metadata"]["ownerReferences"] = kept
        else:
            del updated["metadata"]["ownerReferences"]
        self.store.commit(self._type_of(key), MODIFIED, updated, obj)

    def collect(self) -> int:
        """Run to a fixed point; returns how many objects were deleted. An object whose owners
        are all gone (by UID) is deleted; one with a live owner loses only the dead refs."""
        deleted = 0
        while True:
            live = {str(obj["metadata"].get("uid")) for _, obj in self.store.all_objects()}
            orphaned = [
                (key, obj)
                for key, obj in self.store.all_objects()
                if owner_uids(obj) and not set(owner_uids(obj)) <= live
            ]
            if not orphaned:
                return deleted
            for key, obj in orphaned:
                dead = set(owner_uids(obj)) - live
                if set(owner_uids(obj)) <= dead:
                    self.store.commit(self._type_of(key), DELETED, obj, obj)
                    deleted += 1
                else:
                    self._drop_owner_refs(key, obj, dead)
