"""``spec.secretObjects`` of a SecretProviderClass → what each synced Secret should hold.

Checked per entry, so one bad entry is reported (naming its field) while the others still
sync. Upstream (§7, ``secretutil.ValidateSecretObject``) requires ``secretName``, ``type`` and
``data``, and trims ``objectName`` and ``key``; the API server's own rules for Secret names
and data keys are checked here too, so the message names the SPC field rather than quoting a
422 from the server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

# A DNS subdomain (RFC 1123): what the API accepts as a Secret's name.
_SECRET_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
# What the API accepts as a key of a Secret's data (validation.IsConfigMapKey).
_DATA_KEY = re.compile(r"[-._a-zA-Z0-9]{1,253}")

TLS = "kubernetes.io/tls"
TLS_KEYS = frozenset({"tls.crt", "tls.key"})
# Keys the API server requires for these types (core/v1 validation of Secrets).
REQUIRED_KEYS: Mapping[str, tuple[frozenset[str], str]] = {
    TLS: (frozenset({"tls.crt", "tls.key"}), "tls.crt and tls.key"),
    "kubernetes.io/ssh-auth": (frozenset({"ssh-privatekey"}), "ssh-privatekey"),
    "kubernetes.io/dockerconfigjson": (frozenset({".dockerconfigjson"}), ".dockerconfigjson"),
    "kubernetes.io/dockercfg": (frozenset({".dockercfg"}), ".dockercfg"),
}
BASIC_AUTH = "kubernetes.io/basic-auth"
SERVICE_ACCOUNT_TOKEN = "kubernetes.io/service-account-token"  # noqa: S105 (a type name)
SERVICE_ACCOUNT_ANNOTATION = "kubernetes.io/service-account.name"


@dataclass(frozen=True, slots=True)
class DataEntry:
    """One ``data[j]`` entry: the mounted file ``object_name`` becomes ``key``."""

    object_name: str
    key: str
    field: str  # "spec.secretObjects[0].data[1]"


@dataclass(frozen=True, slots=True)
class SecretSpec:
    """One usable ``spec.secretObjects[i]`` entry."""

    index: int
    secret_name: str
    type: str
    data: tuple[DataEntry, ...]
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def field(self) -> str:
        return f"spec.secretObjects[{self.index}]"


@dataclass(frozen=True, slots=True)
class SpecProblem:
    """An entry that cannot be synced; ``secret_name`` when it names one (a valid name)."""

    index: int
    secret_name: str
    message: str


@dataclass(frozen=True, slots=True)
class ParsedSecretObjects:
    specs: tuple[SecretSpec, ...]
    problems: tuple[SpecProblem, ...]

    @property
    def named(self) -> frozenset[str]:
        """Every Secret name the class asks for, usable or not: a Secret whose entry is broken
        for now is still the class's, and is not removed as "no longer named"."""
        names = {spec.secret_name for spec in self.specs}
        return frozenset(names | {p.secret_name for p in self.problems if p.secret_name})


class _Invalid(ValueError):
    pass


def parse_secret_objects(entries: Sequence[Mapping[str, object]]) -> ParsedSecretObjects:
    specs: list[SecretSpec] = []
    problems: list[SpecProblem] = []
    first_index: dict[str, int] = {}
    for index, entry in enumerate(entries):
        where = f"spec.secretObjects[{index}]"
        name = entry.get("secretName")
        valid_name = name if isinstance(name, str) and _SECRET_NAME.fullmatch(name) else ""
        try:
            spec = _parse_entry(index, entry)
            if spec.secret_name in first_index:
                other = first_index[spec.secret_name]
                raise _Invalid(
                    f"{where}.secretName: {spec.secret_name} is already synced by "
                    f"spec.secretObjects[{other}]"
                )
        except _Invalid as err:
            problems.append(SpecProblem(index, valid_name, str(err)))
            continue
        first_index[spec.secret_name] = index
        specs.append(spec)
    return ParsedSecretObjects(tuple(specs), tuple(problems))


def _parse_entry(index: int, entry: Mapping[str, object]) -> SecretSpec:
    where = f"spec.secretObjects[{index}]"
    name = _text(entry.get("secretName"), f"{where}.secretName")
    if not name:
        raise _Invalid(f"{where}.secretName is missing")
    if len(name) > 253 or not _SECRET_NAME.fullmatch(name):
        raise _Invalid(
            f"{where}.secretName: {name[:64]!r} is not a valid Secret name (lower-case "
            "letters, digits, '-' and '.', at most 253 characters)"
        )
    secret_type = _text(entry.get("type"), f"{where}.type")
    if not secret_type:
        raise _Invalid(
            f"{where}.type is missing for secret {name} (e.g. Opaque or kubernetes.io/tls)"
        )
    data = _data(entry.get("data"), where, name, secret_type)
    labels = _string_map(entry.get("labels"), f"{where}.labels")
    annotations = _string_map(entry.get("annotations"), f"{where}.annotations")
    _check_type_rules(where, name, secret_type, data, annotations)
    return SecretSpec(index, name, secret_type, data, labels, annotations)


def _text(value: object, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _Invalid(f"{where} must be a string")
    return value.strip()


def _data(value: object, where: str, name: str, secret_type: str) -> tuple[DataEntry, ...]:
    if not value:
        raise _Invalid(f"{where}.data is empty for secret {name}")
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        raise _Invalid(f"{where}.data must be a list of {{objectName, key}} mappings")
    entries: list[DataEntry] = []
    seen: dict[str, int] = {}
    for position, item in enumerate(value):
        here = f"{where}.data[{position}]"
        object_name = _text(item.get("objectName"), f"{here}.objectName")
        key = _text(item.get("key"), f"{here}.key")
        if not object_name:
            raise _Invalid(f"{here}.objectName is empty")
        if not key:
            raise _Invalid(f"{here}.key is empty")
        if not _DATA_KEY.fullmatch(key):
            raise _Invalid(
                f"{here}.key: {key[:64]!r} is not a valid Secret data key (letters, digits, "
                "'-', '_' and '.')"
            )
        if secret_type == TLS and key not in TLS_KEYS:
            raise _Invalid(
                f"{here}.key: {key!r} is not supported for type {TLS} (only tls.crt and tls.key)"
            )
        if key in seen:
            raise _Invalid(f"{here}.key: {key} is already set by {where}.data[{seen[key]}]")
        seen[key] = position
        entries.append(DataEntry(object_name, key, here))
    return tuple(entries)


def _string_map(value: object, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _Invalid(f"{where} must be a mapping of strings")
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise _Invalid(f"{where}.{key} must be a string (quote it in the YAML)")
    return dict(value)


def _check_type_rules(
    where: str,
    name: str,
    secret_type: str,
    data: tuple[DataEntry, ...],
    annotations: Mapping[str, str],
) -> None:
    keys = {entry.key for entry in data}
    required = REQUIRED_KEYS.get(secret_type)
    if required is not None and not required[0] <= keys:
        raise _Invalid(f"{where}.data: type {secret_type} needs the keys {required[1]} ({name})")
    if secret_type == BASIC_AUTH and not keys & {"username", "password"}:
        raise _Invalid(f"{where}.data: type {BASIC_AUTH} needs a username or password key")
    if secret_type == SERVICE_ACCOUNT_TOKEN and not annotations.get(SERVICE_ACCOUNT_ANNOTATION):
        raise _Invalid(
            f"{where}.annotations: type {SERVICE_ACCOUNT_TOKEN} needs the annotation "
            f"{SERVICE_ACCOUNT_ANNOTATION}"
        )
