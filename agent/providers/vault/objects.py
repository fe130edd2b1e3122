"""The ``objects`` parameter: a YAML list, inside a string, of the secrets to mount.

Field names and defaults follow hashicorp/vault-csi-provider so existing SecretProviderClasses
keep working, and the YAML is decoded as it decodes it (gopkg.in/yaml.v3 into ``[]Secret``,
see ``agent.providers.common.goyaml``): an unquoted ``secretKey: 0123`` or ``secretKey: on``
names the key ``0123`` or ``on``, ``filePermission: 0440`` is octal. Unlike upstream,
everything is validated before any request is sent, and every error names the object index
and field (never a value that could be secret).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

from agent.errors import InvalidSecretProviderClass, PayloadError
from agent.fs.paths import validate_path
from agent.providers.common.encoding import UnknownEncoding, canonical_encoding
from agent.providers.common.gojson import UnsupportedValue, marshal_text
from agent.providers.common.goyaml import Decoder, Struct, Value, load

KNOWN_FIELDS = frozenset(
    {"objectName", "secretPath", "secretKey", "method", "secretArgs", "filePermission", "encoding"}
)
OBJECTS_SHAPE = "a YAML list of objectName, secretPath, secretKey"
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
    """Parse the ``objects`` string; return the objects and warnings (unknown fields, ...)."""
    items = load(text, Decoder.YAML_V3, where="objects").sequence()
    if not items:
        raise InvalidSecretProviderClass("objects: no objects configured")
    objects: list[SecretObject] = []
    warnings: list[str] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        fields = item.struct()
        obj = _parse_object(index, fields)
        if obj.name in seen:
            raise _fail(
                index, "objectName", f"duplicate of objects[{seen[obj.name]}]; names must be unique"
            )
        seen[obj.name] = index
        warnings.extend(_warnings(index, fields, obj))
        objects.append(obj)
    return tuple(objects), tuple(warnings)


def _warnings(index: int, fields: Struct, obj: SecretObject) -> list[str]:
    found = [
        f"objects[{index}]: unknown field {name!r} ignored" for name in fields.unknown(KNOWN_FIELDS)
    ]
    key = fields.get("secretKey")
    if key is not None and key.is_null:
        # yaml.v3 leaves a string field empty for ~, null or nothing: upstream then writes the
        # whole response. Do the same, but tell the user how to name a key called "null".
        found.append(
            f"objects[{index}].secretKey: YAML null means no key (the whole response is "
            "written); quote it to name a key"
        )
    if obj.encoding != "utf-8" and not obj.key:
        found.append(f"objects[{index}]: encoding is ignored without secretKey")
    return found


def _parse_object(index: int, fields: Struct) -> SecretObject:
    name = fields.string("objectName", required=True)
    if name.startswith("/") or ".." in name.split("/"):
        raise _fail(index, "objectName", "must be a relative file name without '..'")
    try:
        validate_path(name)  # the writer's rules, checked before anything is fetched
    except PayloadError as err:
        raise _fail(index, "objectName", err.message) from None
    secret_path = fields.string("secretPath", required=True)
    method = fields.string("method") or "GET"
    if not _METHOD.fullmatch(method):
        raise _fail(index, "method", "must be an HTTP method such as GET, POST or PUT")
    try:
        encoding = canonical_encoding(fields.string("encoding"))
    except UnknownEncoding as err:
        raise _fail(index, "encoding", str(err)) from None
    args_json = _args(index, fields.get("secretArgs"))
    path, query = _split_path(index, secret_path)
    return SecretObject(
        name=name,
        secret_path=secret_path,
        key=fields.string("secretKey"),
        method=method.upper(),
        args_json=args_json,
        mode=_mode(index, fields.get("filePermission")),
        encoding=encoding,
        read=ReadKey(method.upper(), path, query, args_json),
    )


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


def _args(index: int, value: Value | None) -> str | None:
    """``secretArgs`` (``map[string]interface{}``) as the JSON body Go would send."""
    if value is None or value.is_null:
        return None
    try:
        return marshal_text(value.any_map())
    except UnsupportedValue:
        # e.g. NaN, or a nested mapping with a non-string key: say what, not the value.
        raise _fail(index, "secretArgs", "holds a value that cannot be sent as JSON") from None


def _mode(index: int, value: Value | None) -> int | None:
    """``os.FileMode`` as yaml.v3 reads it (``0440`` is octal), or quoted octal text."""
    if value is None or value.is_null:
        return None
    if value.tag == "!!str":
        match = _OCTAL_TEXT.match(value.string().strip())
        if not match:
            raise _fail(index, "filePermission", "must be an octal number such as 0600")
        mode = int(match.group(1), 8)
    else:
        mode = value.integer(bits=32, signed=False)
    if not 0 <= mode <= 0o777:
        raise _fail(index, "filePermission", "must be between 0000 and 0777")
    # 0 means "not set" upstream (Go omitempty), so the volume's default mode applies.
    return mode or None
