"""The ``objects`` parameter: a YAML list, inside a string, of the secrets to mount.

Field names and defaults follow hashicorp/vault-csi-provider so existing SecretProviderClasses
keep working. Unlike upstream, everything is validated before any request is sent, and every
error names the object index and field (never a value that could be secret).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import yaml

from agent.errors import InvalidSecretProviderClass

ENCODINGS = ("utf-8", "base64", "hex")
KNOWN_FIELDS = frozenset(
    {"objectName", "secretPath", "secretKey", "method", "secretArgs", "filePermission", "encoding"}
)
_METHOD = re.compile(r"^[A-Za-z]{1,16}$")
# A quoted "0600" or "0o600": upstream only takes YAML ints, but a string in octal is
# unambiguous and is what AWS and Azure users type, so accept it rather than fail.
_OCTAL_TEXT = re.compile(r"^0[oO]?([0-7]{1,4})$")


@dataclass(frozen=True, slots=True)
class ReadKey:
    """What makes two objects the same Vault request, so a mount reads it once."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    body: str | None


@dataclass(frozen=True, slots=True)
class SecretObject:
    name: str
    secret_path: str  # as written in the SPC; used in messages and in the version hash
    key: str
    method: str
    args_json: str | None  # canonical JSON of secretArgs, or None when absent
    mode: int | None
    encoding: str
    read: ReadKey

    def canonical(self) -> bytes:
        """Stable bytes of this object's configuration, hashed into its version."""
        doc = {
            "objectName": self.name,
            "secretPath": self.secret_path,
            "secretKey": self.key,
            "method": self.method,
            "secretArgs": self.args_json,
            "filePermission": self.mode,
            "encoding": self.encoding,
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _fail(index: int, field: str, problem: str) -> InvalidSecretProviderClass:
    return InvalidSecretProviderClass(f"objects[{index}].{field}: {problem}")


def parse_objects(text: str) -> tuple[tuple[SecretObject, ...], tuple[str, ...]]:
    """Parse the ``objects`` string; return the objects and warnings about unknown fields."""
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as err:
        # The YAML text may hold secretArgs; report the position only, never the snippet.
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InvalidSecretProviderClass(f"objects: invalid YAML{where}") from None
    if loaded is None or loaded == []:
        raise InvalidSecretProviderClass("objects: no objects configured")
    if not isinstance(loaded, list):
        raise InvalidSecretProviderClass("objects: must be a YAML list of objects")
    objects: list[SecretObject] = []
    warnings: list[str] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(loaded):
        if not isinstance(item, Mapping):
            raise InvalidSecretProviderClass(f"objects[{index}]: must be a mapping")
        obj = _parse_object(index, item)
        if obj.name in seen:
            raise _fail(
                index, "objectName", f"duplicate of objects[{seen[obj.name]}]; names must be unique"
            )
        seen[obj.name] = index
        warnings.extend(
            f"objects[{index}]: unknown field {str(field)!r} ignored"
            for field in item
            if field not in KNOWN_FIELDS
        )
        if obj.encoding != "utf-8" and not obj.key:
            warnings.append(f"objects[{index}]: encoding is ignored without secretKey")
        objects.append(obj)
    return tuple(objects), tuple(warnings)


def _parse_object(index: int, item: Mapping[Any, Any]) -> SecretObject:
    name = _text(index, item, "objectName", required=True)
    if name.startswith("/") or ".." in name.split("/"):
        raise _fail(index, "objectName", "must be a relative file name without '..'")
    secret_path = _text(index, item, "secretPath", required=True)
    method = _text(index, item, "method") or "GET"
    if not _METHOD.match(method):
        raise _fail(index, "method", "must be an HTTP method such as GET, POST or PUT")
    encoding = (_text(index, item, "encoding") or "utf-8").lower()
    if encoding not in ENCODINGS:
        raise _fail(index, "encoding", f"must be one of {', '.join(ENCODINGS)}")
    args_json = _args(index, item.get("secretArgs"))
    path, query = _split_path(index, secret_path)
    return SecretObject(
        name=name,
        secret_path=secret_path,
        key=_text(index, item, "secretKey"),
        method=method.upper(),
        args_json=args_json,
        mode=_mode(index, item.get("filePermission")),
        encoding=encoding,
        read=ReadKey(method.upper(), path, query, args_json),
    )


def _text(index: int, item: Mapping[Any, Any], field: str, *, required: bool = False) -> str:
    value = item.get(field)
    if value is None or value == "":
        if required:
            raise _fail(index, field, "is required")
        return ""
    # YAML turns `secretKey: 123` into an int; upstream's Go decoder accepts it as text.
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _fail(index, field, "must be a string")
    return str(value)


def _split_path(index: int, secret_path: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    path, _, query_text = secret_path.partition("?")
    # Lenient like Go's url.ParseQuery: `?version` is a key with an empty value.
    query = tuple(parse_qsl(query_text, keep_blank_values=True))
    if path.startswith("/v1/"):
        pass
    elif path.startswith("v1/"):
        path = "/" + path
    else:
        path = "/v1/" + path.lstrip("/")
    if path == "/v1/":
        raise _fail(index, "secretPath", "names no path")
    return path, query


def _args(index: int, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _fail(index, "secretArgs", "must be a mapping (sent as the JSON request body)")
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        # e.g. a YAML date or a non-string key: say what, not the value.
        raise _fail(index, "secretArgs", "holds a value that cannot be sent as JSON") from None


def _mode(index: int, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, str):
        match = _OCTAL_TEXT.match(value.strip())
        if not match:
            raise _fail(index, "filePermission", "must be an octal number such as 0600")
        value = int(match.group(1), 8)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(index, "filePermission", "must be an octal number such as 0600")
    if not 0 <= value <= 0o777:
        raise _fail(index, "filePermission", "must be between 0000 and 0777")
    # 0 means "not set" upstream (Go omitempty), so the volume's default mode applies.
    return value or None
