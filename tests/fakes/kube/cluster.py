"""The fake cluster's state, as tests see it (``kube.store``): seed objects, read them back,
delete them, and drive what a real cluster does on its own (compaction, bookmarks, garbage
collection, a pod finishing).

Seeding (:meth:`Cluster.put`) is not an API request: it skips admission (so a test can store
what the API would refuse, e.g. an SPC with wrong types, or a pod with a status), creates the
namespace if missing, stamps uid/resourceVersion/creationTimestamp and notifies watches like
any write. Objects are plain dicts in their storage version (``apiVersion`` as stored: SPCs in
``secrets-store.csi.x-k8s.io/v1``, events in ``v1``)."""

from __future__ import annotations

import builtins
import copy
from collections.abc import Iterable
from typing import Any

import yaml

from tests.fakes.kube.deletion import DeleteOptions, Deleter, DeleteResult
from tests.fakes.kube.gc import GarbageCollector
from tests.fakes.kube.meta import Clock, utc_now
from tests.fakes.kube.operations import Operations
from tests.fakes.kube.patch import merge_patch
from tests.fakes.kube.registry import TypeRegistry
from tests.fakes.kube.resources import ResourceType
from tests.fakes.kube.selectors import parse_field_selector, parse_label_selector
from tests.fakes.kube.store import Backup, Store

Object = dict[str, Any]
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


class Cluster:
    def __init__(
        self,
        types: TypeRegistry,
        *,
        gc: bool = True,
        history_limit: int = 10_000,
        clock: Clock = utc_now,
    ) -> None:
        self.types = types
        self.raw = Store(types, history_limit=history_limit, clock=clock)
        self.collector = GarbageCollector(self.raw, enabled=gc)
        self.ops = Operations(self.raw, self.collector)
        self.deleter = Deleter(self.ops)
        for namespace in DEFAULT_NAMESPACES:
            self.ops.ensure_namespace(namespace)
        self.raw.progress()  # the watch caches start from a list of the store as it is

    def type(self, resource: str | ResourceType) -> ResourceType:
        return resource if isinstance(resource, ResourceType) else self.types.named(resource)

    def _type_of(self, obj: Object) -> ResourceType:
        api_version, kind = str(obj.get("apiVersion", "v1")), str(obj.get("kind", ""))
        group, _, version = api_version.rpartition("/")
        for rtype in self.types:
            if rtype.group == group and rtype.kind == kind and rtype.version(version):
                return rtype
        raise KeyError(f"the fake serves no {kind} in {api_version}")

    # ---- writes ----

    def put(self, obj: Object) -> Object:
        """Create or replace ``obj`` (needs ``apiVersion``, ``kind``, ``metadata.name``),
        skipping admission. A v1alpha1 object is stored as v1, like the API would. Replacing
        with a different ``metadata.uid`` deletes the old object first (a recreation, with
        its DELETED event and garbage collection); otherwise uid and creation time stay."""
        rtype = self._type_of(obj)
        body = copy.deepcopy(obj)
        version = str(obj["apiVersion"]).rpartition("/")[2]
        rtype.strategy.decode(body, rtype, version)
        meta = body.setdefault("metadata", {})
        namespace = str(meta.get("namespace") or ("default" if rtype.namespaced else ""))
        meta.pop("resourceVersion", None)
        name = str(meta.get("name"))
        existing = self.raw.get(rtype, namespace, name)
        if existing is not None and meta.get("uid") not in (None, existing["metadata"]["uid"]):
            # Another uid: the object was recreated (a StatefulSet pod rescheduled).
            self.deleter.delete(rtype, namespace, name, DeleteOptions(grace_period_seconds=0))
            existing = None
        if existing is None:
            return self.ops.create(rtype, namespace, body, admission=False)
        return self.ops.update(rtype, namespace, name, body, admission=False)

    def put_yaml(self, text: str) -> list[Object]:
        """:meth:`put` every document of a YAML stream."""
        return [self.put(doc) for doc in yaml.safe_load_all(text) if doc]

    def patch(self, resource: str, namespace: str, name: str, patch: Object) -> Object:
        """Merge-patch a stored object (no admission), e.g. ``{"status": {"phase": "Failed"}}``."""
        rtype = self.type(resource)
        current = self.raw.get(rtype, namespace, name)
        if current is None:
            raise KeyError(f"{rtype.plural} {namespace}/{name} does not exist")
        patched = merge_patch(current, patch)
        patched["metadata"].pop("resourceVersion", None)
        return self.ops.update(rtype, namespace, name, patched, admission=False)

    def delete(
        self,
        resource: str,
        namespace: str,
        name: str,
        *,
        grace_period_seconds: int | None = 0,
        propagation: str = "Background",
    ) -> DeleteResult:
        """DELETE as the API does it; the default grace period 0 removes a pod at once (what
        kubelet's final delete does). Pass ``None`` for the pod's own grace period."""
        options = DeleteOptions(grace_period_seconds=grace_period_seconds, propagation=propagation)
        return self.deleter.delete(self.type(resource), namespace, name, options)

    # ---- reads ----

    def get(self, resource: str, namespace: str, name: str) -> Object | None:
        return self.raw.get(self.type(resource), namespace, name)

    def count(self, resource: str, namespace: str | None = None) -> int:
        return self.raw.count(self.type(resource), namespace)

    def list(
        self,
        resource: str,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
    ) -> list[Object]:
        rtype = self.type(resource)
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector, set(rtype.fields({"metadata": {}})))
        return [
            obj
            for obj in self.raw.items(rtype, namespace)
            if labels(obj["metadata"].get("labels") or {}) and fields(rtype.fields(obj))
        ]

    @property
    def resource_version(self) -> int:
        return self.raw.resource_version

    # ---- what the cluster does on its own ----

    def compact(self, rv: int | None = None) -> int:
        """etcd compaction: watches and ``continue`` tokens older than ``rv`` (default: now)
        get 410 Gone."""
        return self.raw.compact(rv)

    def backup(self) -> Backup:
        """An etcd snapshot to :meth:`restore` later."""
        return self.raw.backup()

    def restore(
        self, backup: Backup, *, bump_revision: int = 0, mark_compacted: bool = False
    ) -> int:
        """Restore etcd from ``backup``: objects and resourceVersion go back (see
        :meth:`Store.restore`); returns the new resourceVersion."""
        return self.raw.restore(backup, bump_revision=bump_revision, mark_compacted=mark_compacted)

    def bookmark(self) -> None:
        """Send a BOOKMARK at the current resourceVersion to every watch that allows them and
        started from an older one (a progress notification, then the watch cache's bookmark)."""
        self.raw.progress()
        for subscription in self.raw.subscriptions():
            subscription.bookmark(self.raw.resource_version)

    def progress(self) -> None:
        """etcd's progress notification: every resource's watch cache reaches the current
        resourceVersion, so the next periodic bookmark of a watch started before it is sent
        (see :meth:`Store.progress`)."""
        self.raw.progress()

    def drop_watches(self, resource: str | None = None, *, reset: bool = False) -> int:
        """End open watch streams (of one resource, or all); returns how many."""
        key = self.type(resource).key if resource else None
        dropped = self.raw.subscriptions(key)
        for subscription in dropped:
            subscription.drop(reset=reset)
        return len(dropped)

    def freeze_watches(self, resource: str | None = None) -> int:
        """Open watch streams (of one resource, or all) send nothing more, ever (no event, no
        bookmark, no end), and keep their connections open: a server that hangs with its
        kernel still answering, or a proxy that stopped forwarding. Watches opened later work.
        Returns how many."""
        key = self.type(resource).key if resource else None
        frozen = self.raw.subscriptions(key)
        for subscription in frozen:
            subscription.freeze()
            self.raw.unsubscribe(subscription)
        return len(frozen)

    async def wait_for_watchers(self, resource: str | None = None, count: int = 1) -> None:
        """Wait (without polling) until ``count`` watches of ``resource`` (or of anything) are
        open, e.g. before changing the cluster a client must see through its watch."""
        key = self.type(resource).key if resource else None
        await self.raw.wait_for_subscription(key, count)

    def collect_garbage(self) -> int:
        return self.collector.collect()

    def watchers(self, resource: str | None = None) -> int:
        """How many watch streams are open (of one resource, or all)."""
        return len(self.raw.subscriptions(self.type(resource).key if resource else None))

    def extend(self, objects: Iterable[Object]) -> builtins.list[Object]:  # list: the method above
        return [self.put(obj) for obj in objects]
