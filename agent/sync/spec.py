"""``spec.secretObjects`` of a SecretProviderClass → what each synced Secret should hold.

Checked per entry, so one bad entry is reported (naming its field) while the others still
sync. Upstream (§7, ``secretutil.ValidateSecretObject``) requires ``secretName``, ``type`` and
``data``, and trims ``objectName`` and ``key``; the API server's own rules for Secret names,
data keys, labels and annotations are checked here too (``api_rules``), so the message names
the SPC field rather than quoting a 422 from the server.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from agent.sync.api_rules import (
    annotations_size_error,
    data_key_error,
    label_value_error,
    qualified_name_error,
    secret_name_error,
)

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
        valid_name = name.strip() if isinstance(name, str) else ""
        valid_name = "" if secret_name_error(valid_name) else valid_name
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
    if problem := secret_name_error(name):
        raise _Invalid(f"{where}.secretName: {name[:64]!r} {problem}")
    secret_type = _text(entry.get("type"), f"{where}.type")
    if not secret_type:
        raise _Invalid(
            f"{where}.type is missing for secret {name} (e.g. Opaque or kubernetes.io/tls)"
        )
    data = _data(entry.get("data"), where, name, secret_type)
    labels = _labels(entry.get("labels"), f"{where}.labels")
    annotations = _annotations(entry.get("annotations"), f"{where}.annotations")
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
        if problem := data_key_error(key):
            raise _Invalid(f"{here}.key: {key[:64]!r} {problem}")
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


def _labels(value: object, where: str) -> dict[str, str]:
    labels = _string_map(value, where)
    for key, item in labels.items():
        if problem := qualified_name_error(key):
            raise _Invalid(f"{where}: {key[:64]!r} {problem}")
        if problem := label_value_error(item):
            raise _Invalid(f"{where}.{key}: {item[:64]!r} {problem}")
    return labels


def _annotations(value: object, where: str) -> dict[str, str]:
    annotations = _string_map(value, where)
    for key in annotations:
        # The API lower-cases an annotation key before checking it (ValidateAnnotations).
        if problem := qualified_name_error(key.lower()):
            raise _Invalid(f"{where}: {key[:64]!r} {problem}")
    if problem := annotations_size_error(annotations):
        raise _Invalid(f"{where}: {problem}")
    return annotations


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
