"""Events, served from one store in two APIs, as the apiserver does: ``core/v1`` (the storage
shape: ``involvedObject``, ``message``, ``source``, ``count``...) and ``events.k8s.io/v1``
(``regarding``, ``note``, ``reportingController``, ``series``, ``deprecated*``). An event
written through one API is read through the other with the fields mapped.

Validation: an event's ``involvedObject``/``regarding`` namespace must be the event's own;
``events.k8s.io/v1`` creates need ``eventTime``, ``reportingController``,
``reportingInstance``, ``action`` and ``reason``, a ``type`` of Normal or Warning and a note of
at most 1 KiB (``ValidateEventCreate``)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from tests.fakes.kube.resources import FieldGetter, ResourceType, Strategy, Version, text_field
from tests.fakes.kube.status import Cause

Object = dict[str, Any]
NOTE_LIMIT = 1024

# events.k8s.io/v1 field -> core/v1 field (series is the same shape in both)
_RENAMES = {
    "regarding": "involvedObject",
    "note": "message",
    "reportingController": "reportingComponent",
    "deprecatedSource": "source",
    "deprecatedFirstTimestamp": "firstTimestamp",
    "deprecatedLastTimestamp": "lastTimestamp",
    "deprecatedCount": "count",
}
_SAME = (
    "metadata",
    "eventTime",
    "series",
    "related",
    "action",
    "reason",
    "type",
    "reportingInstance",
)
_SELECTABLE = (
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
)


class CoreEventStrategy(Strategy):
    allow_create_on_update = True

    def field_getters(self) -> Mapping[str, FieldGetter]:
        getters = {label: text_field(label) for label in _SELECTABLE}
        getters["source"] = text_field("source.component")
        return getters

    def validate(self, obj: Object, old: Object | None) -> list[Cause]:
        return _namespace_matches(obj, "involvedObject")


class EventsV1Strategy(CoreEventStrategy):
    """``events.k8s.io/v1`` view of the same objects."""

    def field_getters(self) -> Mapping[str, FieldGetter]:
        getters = dict(super().field_getters())
        for label in _SELECTABLE:  # the new API's spelling selects the same fields
            if label.startswith("involvedObject."):
                getters["regarding." + label.split(".", 1)[1]] = getters[label]
        getters["reportingController"] = getters["reportingComponent"]
        return getters

    def decode(self, obj: Object, rtype: ResourceType, version: str) -> list[Cause]:
        causes = _required_new_fields(obj)
        converted = {core: obj[new] for new, core in _RENAMES.items() if new in obj}
        converted.update({key: obj[key] for key in _SAME if key in obj})
        obj.clear()
        obj.update(converted)
        obj["apiVersion"], obj["kind"] = "v1", "Event"
        return causes

    def encode(self, obj: Object, rtype: ResourceType, version: str) -> Object:
        out: Object = {"apiVersion": rtype.api_version(version), "kind": "Event"}
        out.update({key: copy.deepcopy(obj[key]) for key in _SAME if key in obj})
        for new, core in _RENAMES.items():
            if core in obj:
                out[new] = copy.deepcopy(obj[core])
        return out


def _namespace_matches(obj: Object, reference: str) -> list[Cause]:
    namespace = (obj.get("metadata") or {}).get("namespace", "")
    involved = (obj.get(reference) or {}).get("namespace")
    if involved and involved != namespace:
        message = f'Invalid value: "{involved}": does not match event.namespace'
        return [Cause(f"{reference}.namespace", "FieldValueInvalid", message)]
    return []


def _required_new_fields(obj: Object) -> list[Cause]:
    causes = [
        Cause(name, "FieldValueRequired", "Required value")
        for name in ("eventTime", "reportingController", "reportingInstance", "action", "reason")
        if not obj.get(name)
    ]
    if obj.get("type") not in ("Normal", "Warning"):
        message = (
            f'Unsupported value: "{obj.get("type", "")}": supported values: "Normal", "Warning"'
        )
        causes.append(Cause("type", "FieldValueNotSupported", message))
    if len(str(obj.get("note", "")).encode()) > NOTE_LIMIT:
        message = f"Too long: may not be more than {NOTE_LIMIT} bytes"
        causes.append(Cause("note", "FieldValueTooLong", message))
    return causes


def event_types() -> list[ResourceType]:
    v1 = (Version("v1", storage=True),)
    return [
        ResourceType(
            "",
            "events",
            "Event",
            "event",
            v1,
            CoreEventStrategy(),
            short_names=("ev",),
            storage_key="events",
        ),
        ResourceType(
            "events.k8s.io",
            "events",
            "Event",
            "event",
            v1,
            EventsV1Strategy(),
            short_names=("ev",),
            storage_key="events",
        ),
    ]
