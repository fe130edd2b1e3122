"""``extractJSONKey`` / ``extractYAMLKey``: write one top-level string value of the payload.

As upstream (``util/key_extractor.go``): the payload must be a JSON object (or YAML mapping), the
key must be at its top level, and its value must be a string; anything else fails the mount.
The messages name the key, never a value.
"""

from __future__ import annotations

from typing import Any

from agent.errors import ProviderError
from agent.providers.common.gojson import InvalidJSON, loads
from agent.providers.gcp.secrets_yaml import load_document


def extract_json_key(field: str, payload: bytes, key: str) -> bytes:
    # As Go's decoder: invalid UTF-8 and lone surrogate escapes read as U+FFFD, NaN refused.
    try:
        document = loads(payload)
    except InvalidJSON:
        raise ProviderError(
            f"{field}.extractJSONKey: the secret is not valid JSON; cannot extract {key!r}"
        ) from None
    return _value(f"{field}.extractJSONKey", "JSON", document, key)


def extract_yaml_key(field: str, payload: bytes, key: str) -> bytes:
    try:
        document = load_document(payload)
    except ValueError:
        raise ProviderError(
            f"{field}.extractYAMLKey: the secret is not valid YAML; cannot extract {key!r}"
        ) from None
    return _value(f"{field}.extractYAMLKey", "YAML", document, key)


def _value(where: str, kind: str, document: Any, key: str) -> bytes:
    if not isinstance(document, dict):
        raise ProviderError(f"{where}: the secret is not a {kind} object; cannot extract {key!r}")
    if key not in document:
        raise ProviderError(f"{where}: key {key!r} not found in the secret's {kind}")
    value = document[key]
    if not isinstance(value, str):
        raise ProviderError(f"{where}: the value of {key!r} is not a string")
    return value.encode("utf-8")
