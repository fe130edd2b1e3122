"""A Vault response as hashicorp's provider holds it (``api.Secret``) and writes it to a file.

Without ``secretKey``, hashicorp/vault-csi-provider (``internal/provider/provider.go``
``getSecret``) writes ``json.Marshal(secret)`` where ``secret`` came from ``api.ParseSecret``
(vault ``api/secret.go``): the body decoded with ``UseNumber`` into the ``Secret`` struct. So
the file holds that struct's fields in declaration order, not the body as Vault sent it:
``request_id``, ``lease_id``, ``lease_duration``, ``renewable``, ``data``, ``warnings``, then
``auth``, ``wrap_info`` and ``mount_type`` only when set (``omitempty``); numbers inside
``data`` keep their text; maps are sorted; strings are escaped as Go escapes them. A body
with none of those fields set is taken as raw data (``ParseSecret``'s fallback).

Field names match case-insensitively and a value of the wrong type fails, as encoding/json
does. Messages name the field, never its value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.errors import ProviderError
from agent.providers.common.gojson import GoNumber, GoStruct, GoTime, marshal

# (JSON name, kind, omitempty); kind: a type name below, or a nested schema for a *struct.
Schema = tuple[tuple[str, Any, bool], ...]

_MFA_METHOD: Schema = (
    ("type", "string", True),
    ("id", "string", True),
    ("uses_passcode", "bool", True),
    ("name", "string", True),
)
_MFA_ANY: Schema = (("any", ("list", _MFA_METHOD), True),)
_MFA: Schema = (
    ("mfa_request_id", "string", True),
    ("mfa_constraints", ("map", _MFA_ANY), True),
)
_AUTH: Schema = (
    ("client_token", "string", False),
    ("accessor", "string", False),
    ("policies", "strings", False),
    ("token_policies", "strings", False),
    ("identity_policies", "strings", False),
    ("metadata", "string_map", False),
    ("orphan", "bool", False),
    ("entity_id", "string", False),
    ("lease_duration", "int", False),
    ("renewable", "bool", False),
    ("mfa_requirement", _MFA, False),
)
_WRAP_INFO: Schema = (
    ("token", "string", False),
    ("accessor", "string", False),
    ("ttl", "int", False),
    ("creation_time", "time", False),
    ("creation_path", "string", False),
    ("wrapped_accessor", "string", False),
)
SECRET: Schema = (
    ("request_id", "string", False),
    ("lease_id", "string", False),
    ("lease_duration", "int", False),
    ("renewable", "bool", False),
    ("data", "any_map", False),
    ("warnings", "strings", False),
    ("auth", _AUTH, True),
    ("wrap_info", _WRAP_INFO, True),
    ("mount_type", "string", True),
)
_ZERO = {"string": "", "int": 0, "bool": False, "time": GoTime("0001-01-01T00:00:00Z")}
_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)\Z")
_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)\Z")
_MAX_ERRORS_TEXT = 300


class BadResponse(ProviderError):
    """A response hashicorp's provider would fail to decode (wrong type for a field)."""


@dataclass(frozen=True, slots=True)
class VaultSecret:
    fields: GoStruct  # the Secret struct, decoded

    @property
    def data(self) -> Mapping[str, Any] | None:
        data = self.fields.get("data")
        return data if isinstance(data, Mapping) else None

    @property
    def warnings(self) -> list[str]:
        return list(self.fields.get("warnings") or ())

    def to_json(self) -> bytes:
        """``json.Marshal(secret)``."""
        return marshal(_omit_empty(self.fields, SECRET))


def parse_secret(body: Mapping[str, Any]) -> VaultSecret:
    """``api.ParseSecret`` of a body already decoded by ``gojson.loads``."""
    fields = _decode(body, SECRET, "response")
    if _is_zero(fields) and body:
        # ParseSecret: no Secret field set, so the whole body is the data, unless it holds
        # Vault's "errors": alone they mean no secret, with other keys they fail the read.
        errors = body.get("errors")
        if errors is None:
            fields["data"] = dict(body)
        elif len(body) > 1:
            listed = errors if isinstance(errors, list) else [errors]
            text = " ".join(str(e) for e in listed)[:_MAX_ERRORS_TEXT]
            raise BadResponse(f"Vault response holds errors: {text}")
    return VaultSecret(fields)


def _lookup(body: Mapping[str, Any], name: str) -> tuple[bool, Any]:
    """encoding/json's field match: exact or ASCII case-insensitive; the last key wins."""
    found, value = False, None
    for key, item in body.items():
        if key == name or key.lower() == name:
            found, value = True, item
    return found, value


def _decode(body: Mapping[str, Any], schema: Schema, where: str) -> GoStruct:
    fields = GoStruct()
    for name, kind, _ in schema:
        present, value = _lookup(body, name)
        fields[name] = _value(value, kind, f"{where}.{name}") if present else _zero(kind)
    return fields


def _zero(kind: Any) -> Any:
    return _ZERO.get(kind) if isinstance(kind, str) else None


def _value(value: Any, kind: Any, where: str) -> Any:  # noqa: PLR0911 (one case per Go type)
    if value is None:
        return _zero(kind)  # JSON null leaves a Go field as it was
    if isinstance(kind, tuple) and kind and kind[0] in ("list", "map"):
        return _collection(value, kind, where)
    if isinstance(kind, tuple):
        return _decode(_expect(value, dict, where, "an object"), kind, where)
    if kind == "string":
        return _expect(value, str, where, "a string")
    if kind == "bool":
        return _expect(value, bool, where, "true or false")
    if kind == "int":
        number = _expect(value, GoNumber, where, "an integer")
        if not _INTEGER.match(number.text):
            raise BadResponse(f"Vault {where}: expected an integer")
        return int(number.text)
    if kind == "time":
        return _time(_expect(value, str, where, "an RFC 3339 time"), where)
    if kind in ("strings", "string_map"):
        container = list if kind == "strings" else dict
        _expect(value, container, where, "a list" if kind == "strings" else "an object")
        items = value if kind == "strings" else value.values()
        for item in items:
            _expect(item, str, where, "strings")
        return value
    return _expect(value, dict, where, "an object")  # any_map: values as decoded


def _collection(value: Any, kind: tuple[str, Schema], where: str) -> Any:
    shape, schema = kind

    def one(item: Any) -> GoStruct | None:  # each element is a *struct
        return (
            None if item is None else _decode(_expect(item, dict, where, "objects"), schema, where)
        )

    if shape == "list":
        return [one(item) for item in _expect(value, list, where, "a list")]
    return {key: one(item) for key, item in _expect(value, dict, where, "an object").items()}


def _expect(value: Any, kind: type, where: str, wanted: str) -> Any:
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise BadResponse(f"Vault {where}: expected {wanted}")
    return value


def _time(text: str, where: str) -> GoTime:
    """``time.Time`` through JSON: parsed as RFC 3339, written as RFC 3339 with nanoseconds."""
    match = _RFC3339.match(text)
    if match is None:
        raise BadResponse(f"Vault {where}: expected an RFC 3339 time")
    clock, fraction, zone = match.groups()
    nanos = (fraction or "")[:9].rstrip("0")
    zone = "Z" if zone in ("Z", "+00:00", "-00:00") else zone
    return GoTime(f"{clock}.{nanos}{zone}" if nanos else f"{clock}{zone}")


def _is_empty(value: Any) -> bool:
    """Go's "empty" for omitempty and for DeepEqual with a zero Secret: false, 0, "", nil,
    and an empty slice or map (a pointer to a struct is empty only when nil)."""
    if value is None or value is False or value == "":
        return True
    if type(value) is int:
        return value == 0
    return isinstance(value, list | dict) and not isinstance(value, GoStruct) and not value


def _is_zero(fields: Mapping[str, Any]) -> bool:
    # reflect.DeepEqual(secret, Secret{}): an empty but present map or list is not zero.
    return all(
        v is None or v is False or v == "" or (type(v) is int and not v) for v in fields.values()
    )


def _omit_empty(fields: Mapping[str, Any], schema: Schema) -> GoStruct:
    """The struct as json.Marshal sees it: ``omitempty`` fields left out when empty."""
    out = GoStruct()
    for name, kind, omit in schema:
        value = fields[name]
        if omit and _is_empty(value):
            continue
        out[name] = value if value is None or isinstance(kind, str) else _nested(value, kind)
    return out


def _nested(value: Any, kind: Any) -> Any:
    if kind and kind[0] == "list":
        return [None if v is None else _omit_empty(v, kind[1]) for v in value]
    if kind and kind[0] == "map":
        return {k: None if v is None else _omit_empty(v, kind[1]) for k, v in value.items()}
    return _omit_empty(value, kind)
