"""DELETE as the generic registry performs it: preconditions, finalizers (the object stays
with ``deletionTimestamp`` until they are removed), graceful deletion (pods on a node keep
running with ``deletionTimestamp`` = now + grace until deleted again with 0), and what happens
to dependents: ``Orphan`` strips their reference, ``Foreground`` deletes them first,
``Background`` (the default) leaves them to garbage collection (``gc``)."""

from __future__ import annotations

import copy
import datetime
from dataclasses import dataclass
from typing import Any

from tests.fakes.kube.meta import timestamp
from tests.fakes.kube.operations import Operations
from tests.fakes.kube.resources import ResourceType
from tests.fakes.kube.status import ApiError, conflict, not_found
from tests.fakes.kube.watch import MODIFIED

Object = dict[str, Any]


@dataclass(frozen=True)
class DeleteOptions:
    """``metav1.DeleteOptions`` fields the fake honours."""

    grace_period_seconds: int | None = None
    uid: str | None = None  # preconditions.uid
    resource_version: str | None = None  # preconditions.resourceVersion
    propagation: str = "Background"  # Orphan | Background | Foreground

    @classmethod
    def from_body(
        cls, body: Object, query_grace: str | None, query_policy: str | None
    ) -> DeleteOptions:
        preconditions = body.get("preconditions") or {}
        grace = body.get("gracePeriodSeconds", query_grace)
        policy = body.get("propagationPolicy") or query_policy
        if policy is None and body.get("orphanDependents") is True:
            policy = "Orphan"
        if policy not in (None, "Orphan", "Background", "Foreground"):
            raise ApiError(
                422,
                "Invalid",
                f'DeleteOptions.meta.k8s.io "" is invalid: '
                f'propagationPolicy: Unsupported value: "{policy}"',
            )
        return cls(
            grace_period_seconds=None if grace is None else int(grace),
            uid=preconditions.get("uid"),
            resource_version=preconditions.get("resourceVersion"),
            propagation=policy or "Background",
        )


@dataclass(frozen=True)
class DeleteResult:
    obj: Object  # the deleted object, or its new state while deletion is pending
    removed: bool  # False: finalizers or a grace period keep it for now


class Deleter:
    def __init__(self, operations: Operations) -> None:
        self.store = operations.store
        self.collector = operations.collector

    def delete(
        self, rtype: ResourceType, namespace: str, name: str, options: DeleteOptions
    ) -> DeleteResult:
        current = self.store.get(rtype, namespace, name)
        if current is None:
            raise not_found(rtype.plural, rtype.group, name)
        self._check_preconditions(rtype, name, current, options)
        meta = current["metadata"]
        grace = rtype.strategy.grace_period(current, options.grace_period_seconds)
        pending = meta.get("deletionTimestamp")
        if pending and (
            grace >= int(meta.get("deletionGracePeriodSeconds") or 0) or meta.get("finalizers")
        ):
            return DeleteResult(current, removed=False)  # already on its way; nothing changes
        if options.propagation == "Orphan":
            self.collector.orphan(meta["uid"])
        if options.propagation == "Foreground":
            self.collector.delete_dependents(meta["uid"])
        if meta.get("finalizers") or grace > 0:
            return DeleteResult(self._mark_deleting(rtype, current, grace), removed=False)
        return DeleteResult(self.collector.remove(rtype, current), removed=True)

    def _check_preconditions(
        self, rtype: ResourceType, name: str, current: Object, options: DeleteOptions
    ) -> None:
        meta = current["metadata"]
        for label, wanted, actual in (
            ("UID", options.uid, meta.get("uid")),
            ("ResourceVersion", options.resource_version, meta.get("resourceVersion")),
        ):
            if wanted is not None and wanted != actual:
                why = (
                    f"Precondition failed: {label} in precondition: {wanted}, "
                    f"{label} in object meta: {actual}"
                )
                raise conflict(rtype.plural, rtype.group, name, why)

    def _mark_deleting(self, rtype: ResourceType, current: Object, grace: int) -> Object:
        updated = copy.deepcopy(current)
        when = self.store.clock() + datetime.timedelta(seconds=grace)
        updated["metadata"]["deletionTimestamp"] = timestamp(when)
        updated["metadata"]["deletionGracePeriodSeconds"] = grace
        return self.store.commit(rtype, MODIFIED, updated, current)
