"""``interface{}`` decoding behind :mod:`goyaml`: a whole node as Go's ``any`` holds it.

Sources: yaml.v3 v3.0.1 ``decode.go`` (``isStringMap``: a map[string]interface{} when every
key is a string; timestamps become ``time.Time``), yaml.v2 v2.4.0 (mappings are
``map[interface{}]interface{}``, timestamps stay text) and sigs.k8s.io/yaml v1.6.0
``YAMLToJSON`` (kubectl's view; encoding/json then makes every number a float64).
"""

from __future__ import annotations

from typing import Any

import yaml

from agent.providers.common.gojson import AnyKeyMap, UnsupportedValue, format_number
from agent.providers.common.goyaml_limits import MAX_VALUES, Budget, exhausted
from agent.providers.common.goyaml_mappings import key_text, pairs, unique
from agent.providers.common.goyaml_scalars import (
    BINARY,
    BOOL,
    FLOAT,
    INT,
    MERGE,
    NULL,
    STR,
    TIMESTAMP,
    Resolved,
)
from agent.providers.common.goyaml_values import Decoder, Node, fail, resolved


class _Exceeded(Exception):
    """A walk reached its limit (caught in ``_walk``, which says which limit)."""


def to_any(node: Node | None, where: str, decoder: Decoder, budget: Budget) -> object:
    if decoder is Decoder.SIGS_YAML:
        return _floats(to_json(node, where, budget))
    return _walk(node, where, decoder, budget, as_json=False)


def to_json(node: Node | None, where: str, budget: Budget) -> object:
    return _walk(node, where, Decoder.SIGS_YAML, budget, as_json=True)


def _walk(
    node: Node | None, where: str, decoder: Decoder, budget: Budget, *, as_json: bool
) -> object:
    """The node converted, at most MAX_VALUES values (aliases can make a small document expand
    to a huge one) and at most what is left of the text's ``budget``, which pays for them."""
    limit = MAX_VALUES if budget.left > MAX_VALUES else budget.left
    left = limit

    def walk(node: Node | None, where: str) -> object:
        nonlocal left
        left -= 1
        if left < 0:
            raise _Exceeded
        if isinstance(node, yaml.SequenceNode):
            return [walk(item, f"{where}[{i}]") for i, item in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            found = pairs(node, where, decoder, budget)
            if as_json:
                named = [(key_text(k, where, decoder), v) for k, v in found]
                return {name: walk(v, f"{where}.{name}") for name, v in named}
            keyed = _interface_keys(found, where, decoder)
            converted: dict[Any, object] = AnyKeyMap() if isinstance(keyed, AnyKeyMap) else {}
            for key, value in keyed.items():
                converted[key] = walk(value, where)
            return converted
        if node is None:
            return None
        found_scalar = resolved(node, where, decoder.yaml11_bools)
        return (
            _json_scalar(found_scalar, node.value, where)
            if as_json
            else _scalar_any(found_scalar, node.value, decoder)
        )

    try:
        converted = walk(node, where)
    except RecursionError:
        raise fail(where, "nested too deeply") from None
    except _Exceeded:
        if limit < MAX_VALUES:
            raise exhausted(where) from None
        raise fail(where, f"expands to more than {MAX_VALUES} values (aliases)") from None
    finally:
        budget.left -= limit - left if left >= 0 else limit
    if budget.left < 0:  # merges inside spent the rest meanwhile
        raise exhausted(where)
    return converted


def _interface_keys(
    found: list[tuple[Node, Node]], where: str, decoder: Decoder
) -> dict[Any, Node]:
    """Keys as an interface{} map holds them: yaml.v3 makes a map[string]interface{} when
    every key is a string (isStringMap), otherwise, like yaml.v2 always, an AnyKeyMap."""
    unique(found, where, decoder)
    typed = [_key_scalar(key, where, decoder) for key, _ in found]
    if decoder is Decoder.YAML_V3 and all(t.tag in (STR, MERGE) for t in typed):
        return {str(t.value): value for t, (_, value) in zip(typed, found, strict=True)}
    keyed = AnyKeyMap()
    for t, (key, value) in zip(typed, found, strict=True):
        keyed[_scalar_any(t, key.value, decoder)] = value
    return keyed


def _key_scalar(key: Node, where: str, decoder: Decoder) -> Resolved:
    if not isinstance(key, yaml.ScalarNode):
        raise fail(where, "mapping keys must be scalars")
    return resolved(key, where, decoder.yaml11_bools)


def _scalar_any(found: Resolved, text: str, decoder: Decoder) -> object:
    if found.tag == TIMESTAMP and decoder is Decoder.YAML_V2:
        return text  # yaml.v2 keeps timestamp-looking text a string for interface{}
    return found.value


def _json_scalar(found: Resolved, text: str, where: str) -> object:
    if found.tag == FLOAT:
        assert isinstance(found.value, float)
        try:
            format_number(found.value)
        except UnsupportedValue:
            raise fail(where, "an infinite or NaN number cannot be converted to JSON") from None
    if found.tag in (STR, INT, FLOAT, BOOL, NULL, BINARY):
        return found.value
    return text  # timestamps (yaml.v2 hands them over as text) and unknown tags


def _floats(value: object) -> object:
    """encoding/json into interface{}: every number becomes a float64."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, list):
        return [_floats(item) for item in value]
    if isinstance(value, dict):
        return {key: _floats(item) for key, item in value.items()}
    return value
