"""Structural-schema pruning and type validation for custom resources, as the apiserver does
for a CRD's ``openAPIV3Schema``: unknown fields are dropped silently (unless
``x-kubernetes-preserve-unknown-fields``), a value of the wrong type is a 422 with a
``FieldValueTypeInvalid`` cause worded like the real one, a missing ``required`` property a
``FieldValueRequired``.

Covered keywords: ``type``, ``properties``, ``additionalProperties``, ``items``, ``required``,
``nullable``, ``x-kubernetes-preserve-unknown-fields``. Not covered (our CRDs use none of them):
formats, enums, min/max, patterns, CEL rules, defaults, list-type maps.
"""

from __future__ import annotations

from typing import Any

from tests.fakes.kube.status import Cause

Object = dict[str, Any]
_ROOT_META = ("apiVersion", "kind", "metadata")
_TYPE_NAMES = (
    (type(None), "null"),
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    (list, "array"),
)


def type_name(value: Any) -> str:
    """The JSON type as the apiserver's messages name it."""
    if isinstance(value, bool):  # before int: bool is an int in Python
        return "boolean"
    for python_type, name in _TYPE_NAMES:
        if isinstance(value, python_type):
            return name
    return "object"


def _fits(value: Any, expected: str) -> bool:
    actual = type_name(value)
    return actual == expected or (expected == "number" and actual == "integer")


def prune_and_validate(obj: Object, schema: Object) -> list[Cause]:
    """Prune ``obj`` in place against the root ``schema``; return the validation causes.
    ``apiVersion``, ``kind`` and ``metadata`` are the server's, never pruned here."""
    causes: list[Cause] = []
    properties = schema.get("properties") or {}
    for key in list(obj):
        if key in _ROOT_META:
            continue
        if key in properties:
            obj[key] = _walk(obj[key], properties[key], key, causes)
        elif not schema.get("x-kubernetes-preserve-unknown-fields"):
            del obj[key]
    _required(obj, schema, "", causes)
    return causes


def _walk(value: Any, schema: Object, path: str, causes: list[Cause]) -> Any:
    expected = schema.get("type")
    if value is None and schema.get("nullable"):
        return value
    if expected and not _fits(value, expected):
        actual = type_name(value)
        message = (
            f'Invalid value: "{actual}": {path} in body must be of type {expected}: "{actual}"'
        )
        causes.append(Cause(path, "FieldValueTypeInvalid", message))
        return value
    if isinstance(value, dict):
        return _walk_object(value, schema, path, causes)
    if isinstance(value, list) and "items" in schema:
        return [
            _walk(item, schema["items"], f"{path}[{i}]", causes) for i, item in enumerate(value)
        ]
    return value


def _walk_object(value: Object, schema: Object, path: str, causes: list[Cause]) -> Object:
    properties = schema.get("properties")
    additional = schema.get("additionalProperties")
    preserve = schema.get("x-kubernetes-preserve-unknown-fields", False)
    for key in list(value):
        child = f"{path}.{key}"
        if properties and key in properties:
            value[key] = _walk(value[key], properties[key], child, causes)
        elif isinstance(additional, dict):
            value[key] = _walk(value[key], additional, child, causes)
        elif not preserve and additional is not True:
            del value[key]
    _required(value, schema, path, causes)
    return value


def _required(value: Object, schema: Object, path: str, causes: list[Cause]) -> None:
    for name in schema.get("required") or ():
        if name not in value:
            where = f"{path}.{name}" if path else name
            causes.append(Cause(where, "FieldValueRequired", "Required value"))
