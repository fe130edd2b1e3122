"""The ``objects`` parameter of an Azure SecretProviderClass: a YAML ``array:`` of YAML strings,
each string one Key Vault object.

Fields, defaults and rules follow Azure/secrets-store-csi-driver-provider-azure (``types.
KeyVaultObject`` and ``validate``): surrounding whitespace is trimmed from every string field;
``objectType`` is ``secret`` | ``key`` | ``cert`` (exact spelling); ``objectFormat`` ``pem`` |
``pfx`` and ``objectEncoding`` ``utf-8`` | ``hex`` | ``base64`` (any case); the file name is
``objectAlias`` or ``objectName``. Unlike upstream, everything is checked before any request is
sent (a bad type, version or permission fails the mount up front), and every message names the
object's index and field, never a value that could be secret.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from agent.errors import InvalidSecretProviderClass
from agent.providers.common import goyaml
from agent.providers.common.encoding import UTF8, UnknownEncoding, canonical_encoding
from agent.providers.common.goyaml import Decoder

SECRET, KEY, CERT = "secret", "key", "cert"
OBJECT_TYPES = (SECRET, KEY, CERT)
FORMAT_PEM, FORMAT_PFX = "pem", "pfx"
LATEST = "latest"

# Key Vault's own rule for object names; a name outside it cannot exist, and the name becomes
# a URL path segment, so it is refused before anything is sent.
_OBJECT_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")
# Key Vault version identifiers are 32 hexadecimal digits.
_VERSION = re.compile(r"^[0-9A-Fa-f]{32}$")
_OCTAL = re.compile(r"^[0-7]{1,4}$")
MAX_MODE = 0o777
NAME_MAX = 255  # bytes in one path component (Linux NAME_MAX; NTFS allows 255 UTF-16 units)
_STRING_FIELDS = (
    "objectName",
    "objectAlias",
    "objectVersion",
    "objectType",
    "objectFormat",
    "objectEncoding",
    "filePermission",
)


@dataclass(frozen=True, slots=True)
class KeyVaultObject:
    """One entry of ``objects``. ``version`` is "" for the latest; ``history`` > 1 mounts that
    many versions as ``<file_name>/<i>``; ``mode`` is None for the volume's default."""

    index: int
    name: str
    object_type: str
    file_name: str
    version: str = ""
    history: int = 0
    object_format: str = FORMAT_PEM
    encoding: str = UTF8
    mode: int | None = None

    @property
    def uid(self) -> str:
        """Upstream's object id in the pod status: ``<type>/<name>``."""
        return f"{self.object_type}/{self.name}"

    @property
    def syncs_history(self) -> bool:
        return self.history > 1

    def describe(self, version: str | None = None) -> str:
        """Upstream's wording, so its error messages stay recognisable."""
        shown = self.version if version is None else version
        return (
            f"failed to get objectType:{self.object_type}, objectName:{self.name}, "
            f"objectVersion:{shown}"
        )


def fail(index: int, field: str, problem: str) -> InvalidSecretProviderClass:
    return InvalidSecretProviderClass(f"objects[{index}].{field}: {problem}")


def parse_objects(text: str) -> tuple[KeyVaultObject, ...]:
    """Parse the (already trimmed) ``objects`` parameter; InvalidSecretProviderClass otherwise."""
    # Upstream: yaml.v3 into struct{ Array []string `yaml:"array"` }, then each string again.
    # Upstream decodes no objects when "array" is missing or empty, and the driver then fails
    # the mount ("missing object versions"); the same refusal here names the field.
    array = goyaml.load(text, Decoder.YAML_V3, where="objects").struct().get("array")
    if array is None:
        raise InvalidSecretProviderClass(
            "objects: has no 'array' list of objects (a mapping whose 'array' lists YAML "
            "strings, one object each)"
        )
    entries = array.strings()
    if not entries:
        raise InvalidSecretProviderClass("objects.array: lists no objects")
    objects = _parse_each(entries)
    _check_unique_files(objects)
    return objects


def _parse_each(entries: list[str]) -> tuple[KeyVaultObject, ...]:
    """Each entry parsed, a repeated one only once: YAML aliases can repeat a long entry
    hundreds of thousands of times in a short text (a repeat writes the file of the first,
    which ``_check_unique_files`` then reports)."""
    firsts: dict[str, KeyVaultObject] = {}
    objects = []
    for index, entry in enumerate(entries):
        first = firsts.get(entry)
        if first is None:
            first = firsts[entry] = parse_object(index, entry)
        objects.append(first if first.index == index else dataclasses.replace(first, index=index))
    return tuple(objects)


def parse_object(index: int, text: str) -> KeyVaultObject:
    fields = goyaml.load(text, Decoder.YAML_V3, where=f"objects[{index}]").struct()
    values = {name: fields.string(name).strip() for name in _STRING_FIELDS}
    history = fields.integer("objectVersionHistory", bits=32) or 0
    name, object_type = values["objectName"], values["objectType"]
    if not name:
        raise fail(index, "objectName", "is required")
    if not _OBJECT_NAME.fullmatch(name):
        raise fail(index, "objectName", "Key Vault names are 1-127 letters, digits and '-'")
    if object_type not in OBJECT_TYPES:
        raise fail(index, "objectType", "invalid type; should be secret, key, or cert")
    return KeyVaultObject(
        index=index,
        name=name,
        object_type=object_type,
        file_name=_file_name(index, values["objectAlias"], name),
        version=_version(index, values["objectVersion"]),
        history=history,
        object_format=_object_format(index, values["objectFormat"], object_type),
        encoding=_encoding(index, values["objectEncoding"], object_type),
        mode=_mode(index, values["filePermission"]),
    )


def _file_name(index: int, alias: str, name: str) -> str:
    """Upstream's ``validateFileName`` (relative, no ``..`` anywhere) plus the writer's own
    rules, checked here so the message names the field rather than a path."""
    field, value = ("objectAlias", alias) if alias else ("objectName", name)
    if value.startswith("/") or value.startswith("\\"):
        raise fail(index, field, "file name must be a relative path")
    if ".." in value:
        raise fail(index, field, "file name must not contain '..'")
    if "\\" in value or "\0" in value:
        raise fail(index, field, "file name must not contain a backslash or NUL")
    parts = value.split("/")
    if any(part in ("", ".") for part in parts):
        raise fail(index, field, "file name must be a clean relative path (no '//', '.', end '/')")
    if any(len(part.encode("utf-8", "surrogatepass")) > NAME_MAX for part in parts):
        raise fail(index, field, f"each part of the file name is at most {NAME_MAX} bytes")
    return value


def _version(index: int, version: str) -> str:
    if version in ("", LATEST):
        return ""  # latest, also for a single version (upstream sends 'latest' as a version)
    if not _VERSION.fullmatch(version):
        raise fail(index, "objectVersion", "a Key Vault version is 32 hexadecimal digits, or empty")
    return version


def _object_format(index: int, value: str, object_type: str) -> str:
    if not value:
        return FORMAT_PEM
    if value.lower() not in (FORMAT_PEM, FORMAT_PFX):
        raise fail(index, "objectFormat", f"invalid objectFormat {value!r}, should be PEM or PFX")
    # As upstream: only the lower-case spelling is refused for keys and certificates (for those
    # types the format is ignored), so SecretProviderClasses it accepts still mount.
    if value == FORMAT_PFX and object_type != SECRET:
        raise fail(index, "objectFormat", "PFX format only supported for objectType: secret")
    return value.lower()


def _encoding(index: int, value: str, object_type: str) -> str:
    if not value:
        return UTF8
    if object_type != SECRET:
        raise fail(index, "objectEncoding", "objectEncoding only supported for objectType: secret")
    try:
        return canonical_encoding(value)
    except UnknownEncoding:
        shown = f"invalid objectEncoding {value!r}, should be hex, base64 or utf-8"
        raise fail(index, "objectEncoding", shown) from None


def _mode(index: int, value: str) -> int | None:
    """``filePermission`` is an octal string (``"0644"``), parsed as upstream's ParseInt(s, 8)."""
    if not value:
        return None
    if not _OCTAL.fullmatch(value) or int(value, 8) > MAX_MODE:
        raise fail(index, "filePermission", "must be an octal mode such as 0644 (at most 0777)")
    return int(value, 8)


def _check_unique_files(objects: tuple[KeyVaultObject, ...]) -> None:
    """Two objects writing the same file would silently lose one; say which."""
    seen: dict[str, int] = {}
    for obj in objects:
        first = seen.setdefault(obj.file_name, obj.index)
        if first != obj.index:
            field = "objectAlias" if obj.file_name != obj.name else "objectName"
            raise fail(
                obj.index, field, f"file name {obj.file_name!r} is also used by objects[{first}]"
            )
