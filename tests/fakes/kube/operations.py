"""Create and update as the apiserver's generic registry performs them, on top of the
:class:`~tests.fakes.kube.store.Store`: system metadata, strategy hooks (defaults,
validation, fields an update may not touch), optimistic concurrency, no-op updates that keep
the resourceVersion, finalizers (an update removing the last one from a deleting object
deletes it). DELETE is in ``deletion``, removal and garbage collection in ``gc``.

``admission=False`` is the test-seeding path: it keeps what the caller wrote (status, uid,
a resourceVersion-less update of a custom resource, a missing namespace is created) and still
stamps system fields, so a seeded object looks like one the server made.
"""

from __future__ import annotations

import copy
from typing import Any

from tests.fakes.kube.crds import bump_generation
from tests.fakes.kube.gc import NAMESPACES, GarbageCollector
from tests.fakes.kube.meta import (
    SYSTEM_FIELDS,
    generate_name,
    name_causes,
    new_uid,
    timestamp,
)
from tests.fakes.kube.resources import ResourceType
from tests.fakes.kube.status import (
    ApiError,
    Cause,
    already_exists,
    conflict,
    invalid,
    not_found,
)
from tests.fakes.kube.store import Store
from tests.fakes.kube.watch import ADDED, MODIFIED

Object = dict[str, Any]


class Operations:
    def __init__(self, store: Store, collector: GarbageCollector) -> None:
        self.store = store
        self.collector = collector

    # ---- create ----

    def create(
        self, rtype: ResourceType, namespace: str, obj: Object, *, admission: bool = True
    ) -> Object:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if admission and meta.get("resourceVersion"):
            raise ApiError(
                500, "InternalError", "resourceVersion should not be set on objects to be created"
            )
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = generate_name(str(meta["generateName"]))
        name = str(meta.get("name") or "")
        if rtype.namespaced:
            meta["namespace"] = namespace
            if admission:
                self._require_namespace(namespace)
            else:
                self.ensure_namespace(namespace)
        else:
            meta.pop("namespace", None)
        kept = {} if admission else {k: meta[k] for k in ("uid", "creationTimestamp") if k in meta}
        for system in SYSTEM_FIELDS:
            meta.pop(system, None)
        meta["uid"] = kept.get("uid") or new_uid()
        meta["creationTimestamp"] = kept.get("creationTimestamp") or timestamp(self.store.clock())
        if admission:
            rtype.strategy.prepare_create(obj)
        rtype.strategy.defaults(obj)
        if rtype.strategy.custom:
            meta["generation"] = 1
        if admission:
            self._validate(rtype, obj, None)
        existing = self.store.get(rtype, namespace, name)
        if existing is not None:
            deleting = bool(existing["metadata"].get("deletionTimestamp"))
            raise already_exists(rtype.plural, rtype.group, name, deleting=deleting)
        return self.store.commit(rtype, ADDED, obj, None)

    def _validate(self, rtype: ResourceType, obj: Object, old: Object | None) -> None:
        name = str(obj["metadata"].get("name") or "")
        causes = name_causes(name, label=rtype.plural == NAMESPACES and not rtype.group)
        causes += rtype.strategy.validate(obj, old)
        if causes:
            raise invalid(rtype.kind, rtype.group, name, causes)

    def _require_namespace(self, namespace: str) -> None:
        namespaces = self.store.types.named(NAMESPACES)
        if self.store.get(namespaces, "", namespace) is None:
            raise not_found(NAMESPACES, "", namespace)

    def ensure_namespace(self, namespace: str) -> None:
        namespaces = self.store.types.named(NAMESPACES)
        if namespace and self.store.get(namespaces, "", namespace) is None:
            self.create(namespaces, "", {"metadata": {"name": namespace}}, admission=False)

    # ---- update ----

    def update(
        self,
        rtype: ResourceType,
        namespace: str,
        name: str,
        obj: Object,
        *,
        subresource: str = "",
        admission: bool = True,
    ) -> Object:
        """PUT semantics. A body without ``metadata.resourceVersion`` is unconditional where
        the type allows it (422 for custom resources); a stale one is 409 Conflict."""
        new = copy.deepcopy(obj)
        meta = new.setdefault("metadata", {})
        old = self.store.get(rtype, namespace, name)
        if old is None:
            if rtype.strategy.allow_create_on_update and not subresource:
                return self.create(rtype, namespace, new, admission=admission)
            raise not_found(rtype.plural, rtype.group, name)
        self._check_version(rtype, name, meta, old, admission)
        old_meta = old["metadata"]
        for system in SYSTEM_FIELDS:
            if system in old_meta:
                meta[system] = old_meta[system]
            else:
                meta.pop(system, None)
        meta["name"], meta["namespace"] = old_meta["name"], old_meta.get("namespace")
        if not rtype.namespaced:
            meta.pop("namespace", None)
        if admission:
            rtype.strategy.prepare_update(new, old, subresource)
        rtype.strategy.defaults(new)
        if rtype.strategy.custom:
            bump_generation(new, old)
        if admission:
            self._validate(rtype, new, old)
            self._check_finalizers(rtype, new, old)
        if new == old:
            return old  # a no-op update writes nothing: same resourceVersion, no watch event
        if (
            old_meta.get("deletionTimestamp")
            and not meta.get("finalizers")
            and not int(old_meta.get("deletionGracePeriodSeconds") or 0)
        ):
            return self.collector.remove(rtype, old, new)
        return self.store.commit(rtype, MODIFIED, new, old)

    @staticmethod
    def _check_version(
        rtype: ResourceType, name: str, meta: Object, old: Object, admission: bool
    ) -> None:
        requested = str(meta.get("resourceVersion") or "")
        if not requested:
            if admission and not rtype.strategy.allow_unconditional_update:
                cause = Cause(
                    "metadata.resourceVersion",
                    "FieldValueInvalid",
                    "Invalid value: 0x0: must be specified for an update",
                )
                raise invalid(rtype.plural, rtype.group, name, [cause])
            return
        if requested != old["metadata"]["resourceVersion"]:
            raise conflict(rtype.plural, rtype.group, name)

    @staticmethod
    def _check_finalizers(rtype: ResourceType, new: Object, old: Object) -> None:
        if not old["metadata"].get("deletionTimestamp"):
            return
        added = set(new["metadata"].get("finalizers") or ()) - set(
            old["metadata"].get("finalizers") or ()
        )
        if added:
            cause = Cause(
                "metadata.finalizers",
                "FieldValueForbidden",
                "Forbidden: no new finalizers can be added if the object is being "
                "deleted, found new finalizers " + str(sorted(added)),
            )
            raise invalid(rtype.kind, rtype.group, new["metadata"]["name"], [cause])
