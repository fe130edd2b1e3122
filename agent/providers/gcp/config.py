"""Parse upstream's attribute map for ``provider: gcp`` into a frozen mount configuration.

Parameters, as the upstream provider reads them (its ``config/config.go``):

- ``secrets`` (required): a YAML list, one entry per file, with ``resourceName``, ``fileName``
  or ``path`` (``path`` wins; nested paths allowed), optional ``mode`` (int32: octal literal such
  as ``0640`` or decimal 0-511), and at most one of ``extractJSONKey`` / ``extractYAMLKey``.
  Unknown keys are ignored, as Go's YAML decoder ignores them (a warning is logged here).
- ``auth``: ``pod-adc`` (default), ``provider-adc``; unset with a usable ``key.json`` means the
  node-publish secret. A ``key.json`` is usable only when ``ALLOW_NODE_PUBLISH_SECRET`` is true,
  and then conflicts with an explicit ``auth``.

Everything is checked before any request: a bad entry fails the mount with a message naming
``secrets[i].<field>``, and nothing is fetched or written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from agent.errors import InvalidSecretProviderClass, PayloadError
from agent.fs.paths import validate_path
from agent.providers.common.parameters import require_parameter
from agent.providers.gcp.resources import Resource, parse_resource
from agent.providers.gcp.secrets_yaml import RawSecret, load_secrets

Auth = Literal["pod-adc", "provider-adc", "key.json"]
KEY_JSON = "key.json"  # the node-publish secret's key holding a service-account key
MAX_MODE = 0o777


@dataclass(frozen=True, slots=True)
class SecretEntry:
    """One ``secrets`` entry: fetch ``resource``, write it (or one key of it) at ``path``."""

    index: int
    resource: Resource
    path: str
    mode: int | None = None
    extract_json_key: str = ""
    extract_yaml_key: str = ""

    @property
    def field(self) -> str:
        return f"secrets[{self.index}]"


Secrets = tuple[tuple[SecretEntry, ...], tuple[str, ...]]  # entries, warnings


@dataclass(frozen=True, slots=True)
class MountConfig:
    secrets: tuple[SecretEntry, ...]
    auth: Auth
    key_json: str = field(default="", repr=False)
    warnings: tuple[str, ...] = ()


def parse_config(
    attributes: Mapping[str, str],
    node_publish_secrets: Mapping[str, str],
    *,
    allow_node_publish_secret: bool,
    secrets: Secrets | None = None,
) -> MountConfig:
    """Raise InvalidSecretProviderClass naming the parameter or ``secrets[i].<field>``.

    ``secrets``: :func:`secrets_from` of the ``secrets`` parameter, when the caller has it
    (the provider parses through common.parsed); parsed here otherwise."""
    warnings: list[str] = []
    # Upstream: a key.json entry, even empty, selects the node-publish secret when allowed.
    has_key = allow_node_publish_secret and KEY_JSON in node_publish_secrets
    if KEY_JSON in node_publish_secrets and not allow_node_publish_secret:
        warnings.append(
            f"the node-publish secret has {KEY_JSON}, ignored: the agent's "
            "ALLOW_NODE_PUBLISH_SECRET is not true"
        )
    auth = _auth(attributes.get("auth", ""), has_key=has_key)
    text = require_parameter(attributes, "secrets", "a YAML list of resourceName ...")
    entries, unknown = secrets_from(text) if secrets is None else secrets
    warnings.extend(unknown)
    key_json = node_publish_secrets.get(KEY_JSON, "") if auth == "key.json" else ""
    return MountConfig(entries, auth, key_json, tuple(warnings))


def secrets_from(text: str) -> Secrets:
    """The ``secrets`` parameter: its entries and warnings; pure, so it may be cached by text."""
    raw, unknown = load_secrets(text)
    return _entries(raw), tuple(unknown)


def _auth(value: str, *, has_key: bool) -> Auth:
    if value in ("provider-adc", "pod-adc"):
        if has_key:
            raise InvalidSecretProviderClass(
                f"auth: {value!r} and a node-publish secret {KEY_JSON} are both set; "
                "use one of them"
            )
        return value  # type: ignore[return-value]
    if value:
        raise InvalidSecretProviderClass(
            f"auth: unknown value {value!r} (use pod-adc, provider-adc, or leave it unset "
            f"with a node-publish secret {KEY_JSON})"
        )
    return "key.json" if has_key else "pod-adc"


def _entries(raw: list[RawSecret]) -> tuple[SecretEntry, ...]:
    """Entries in order; an exact repeat of an earlier one is kept once. Two entries may not
    write one file, nor may one's file be a directory of another's."""
    entries: list[SecretEntry] = []
    files: dict[str, SecretEntry] = {}
    directories: dict[str, SecretEntry] = {}  # every directory above a file: its first owner
    for index, item in enumerate(raw):
        entry = _entry(index, item)
        first = files.get(entry.path)
        if first is not None and _same_but_index(first, entry):
            continue
        clash = _clash(entry, first, files, directories)
        if clash:
            which = "path" if item.path else "fileName"
            raise InvalidSecretProviderClass(f"{entry.field}.{which}: {entry.path!r} {clash}")
        files[entry.path] = entry
        for directory in _directories(entry.path):
            directories.setdefault(directory, entry)
        entries.append(entry)
    return tuple(entries)


def _clash(
    entry: SecretEntry,
    same_file: SecretEntry | None,
    files: dict[str, SecretEntry],
    directories: dict[str, SecretEntry],
) -> str:
    if same_file is not None:
        return f"is also the file of {same_file.field}"
    if entry.path in directories:
        below = directories[entry.path]
        return f"is a directory of the file {below.path!r} of {below.field}"
    for directory in _directories(entry.path):
        if directory in files:
            return f"needs the directory {directory!r}, the file of {files[directory].field}"
    return ""


def _directories(path: str) -> list[str]:
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _entry(index: int, item: RawSecret) -> SecretEntry:
    where = f"secrets[{index}]"
    if not item.resource_name:
        raise InvalidSecretProviderClass(f"{where}.resourceName: is required")
    resource = parse_resource(f"{where}.resourceName", item.resource_name)
    which, path = ("path", item.path) if item.path else ("fileName", item.file_name)
    if not path:
        raise InvalidSecretProviderClass(f"{where}: fileName or path is required")
    try:
        validate_path(path)
    except PayloadError as err:
        raise InvalidSecretProviderClass(f"{where}.{which}: {err.message}") from None
    if item.mode is not None and not 0 <= item.mode <= MAX_MODE:
        raise InvalidSecretProviderClass(
            f"{where}.mode: {item.mode} is not a file mode (octal 0000-0777, decimal 0-511)"
        )
    if item.extract_json_key and item.extract_yaml_key:
        raise InvalidSecretProviderClass(
            f"{where}: extractJSONKey and extractYAMLKey cannot both be set"
        )
    return SecretEntry(
        index, resource, path, item.mode, item.extract_json_key, item.extract_yaml_key
    )


def _same_but_index(a: SecretEntry, b: SecretEntry) -> bool:
    return (a.resource, a.path, a.mode, a.extract_json_key, a.extract_yaml_key) == (
        b.resource,
        b.path,
        b.mode,
        b.extract_json_key,
        b.extract_yaml_key,
    )
