"""The ``secrets`` parameter: YAML text decoded as upstream's Go struct list.

INTERIM: scalar typing comes from the shared Go-compatible YAML loader being built on
branch i6-compat; until it lands this reads untyped scalars.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from agent.errors import InvalidSecretProviderClass

_FIELDS = ("resourceName", "fileName", "path", "extractJSONKey", "extractYAMLKey", "mode")


@dataclass(frozen=True, slots=True)
class RawSecret:
    resource_name: str = ""
    file_name: str = ""
    path: str = ""
    extract_json_key: str = ""
    extract_yaml_key: str = ""
    mode: int | None = None


def load_secrets(text: str) -> tuple[list[RawSecret], list[str]]:
    """Decode the list; return it with warnings about keys upstream would ignore."""
    try:
        document: Any = yaml.load(text, Loader=yaml.BaseLoader)  # noqa: S506 (BaseLoader is safe)
    except yaml.YAMLError as err:
        raise InvalidSecretProviderClass(f"secrets: not valid YAML: {err}") from None
    if document is None:
        return [], []
    if not isinstance(document, list):
        raise InvalidSecretProviderClass("secrets: must be a YAML list of entries")
    warnings: list[str] = []
    out = []
    for index, item in enumerate(document):
        if not isinstance(item, dict):
            raise InvalidSecretProviderClass(f"secrets[{index}]: must be a mapping")
        unknown = sorted(str(k) for k in item if k not in _FIELDS)
        if unknown:
            warnings.append(f"secrets[{index}]: unknown keys ignored: {', '.join(unknown)}")
        out.append(
            RawSecret(
                resource_name=item.get("resourceName", "") or "",
                file_name=item.get("fileName", "") or "",
                path=item.get("path", "") or "",
                extract_json_key=item.get("extractJSONKey", "") or "",
                extract_yaml_key=item.get("extractYAMLKey", "") or "",
                mode=_interim_int(item["mode"]) if item.get("mode") else None,
            )
        )
    return out, warnings


def load_document(payload: bytes) -> Any:
    """A YAML document decoded into Go's ``map[string]any`` (INTERIM, see above)."""
    try:
        return yaml.load(payload, Loader=yaml.BaseLoader)  # noqa: S506
    except yaml.YAMLError as err:
        raise ValueError(str(err)) from None


def _interim_int(text: str) -> int:
    digits = text.lstrip("+-")
    if len(digits) > 1 and digits[0] == "0" and digits[1].isdigit():
        return int(text, 8)
    return int(text, 0)
