"""Mappings and sequences behind :mod:`goyaml`: merges, repeated keys and field lookup.

Sources: yaml.v3 v3.0.1 ``decode.go`` (``mappingStruct``, ``merge``: written keys beat ``<<``
merges wherever they stand, the first merge source wins, a repeated key fails); yaml.v2 v2.4.0
``decode.go`` (a merge applies where it stands, the last key wins); sigs.k8s.io/yaml v1.6.0
``yaml.go`` (``convertToJSONableObject``: keys become strings; encoding/json then matches field
names case-insensitively and sees the keys in sorted order).
"""

from __future__ import annotations

from typing import Any

import yaml

from agent.providers.common.gojson import go_bytes
from agent.providers.common.gostrconv import format_float
from agent.providers.common.goyaml_limits import Budget
from agent.providers.common.goyaml_scalars import BINARY, FLOAT, MERGE, NULL
from agent.providers.common.goyaml_values import (
    PLAIN,
    Decoder,
    Node,
    describe,
    fail,
    is_null,
    resolved,
    short_tag,
    sigs_text,
    to_string,
)

_MAX_MERGE_DEPTH = 32


def items(node: Node | None, where: str, decoder: Decoder) -> list[Node]:
    if node is None or is_null(node, decoder.yaml11_bools):
        return []
    if not isinstance(node, yaml.SequenceNode):
        raise fail(where, f"must be a list, not {describe(node, decoder.yaml11_bools)}")
    return list(node.value)


def pairs(
    node: Node | None, where: str, decoder: Decoder, budget: Budget
) -> list[tuple[Node, Node]]:
    """A mapping's (key, value) nodes with ``<<`` merges applied as the decoder applies them.

    yaml.v3 (``mappingStruct``/``merge``): written keys in order, then merged keys no written
    key has, the first source winning; only the mapping's last ``<<`` counts. yaml.v2: every
    key in order with each merge spliced in where it stands (sources last-to-first), so the
    last occurrence of a key wins, merged or not. Each merge source spends one from the
    text's ``budget``, and one for each pair it brings (aliases can name a source many times).
    """
    if node is None or is_null(node, decoder.yaml11_bools):
        return []
    if not isinstance(node, yaml.MappingNode):
        raise fail(where, f"must be a mapping, not {describe(node, decoder.yaml11_bools)}")
    return _merged(node, where, decoder, budget, depth=0)


def _is_merge(key: Node) -> bool:
    return isinstance(key, yaml.ScalarNode) and (
        short_tag(key.tag) == MERGE or (key.tag == PLAIN and key.value == "<<")
    )


def _sources(value: Node, where: str) -> list[yaml.MappingNode]:
    sources = value.value if isinstance(value, yaml.SequenceNode) else [value]
    if not all(isinstance(source, yaml.MappingNode) for source in sources):
        raise fail(where, "a << merge must name a mapping or a list of mappings")
    return list(sources)


def _ident(key: Node) -> object:
    return key.value if isinstance(key, yaml.ScalarNode) else id(key)


def _merged(
    node: yaml.MappingNode, where: str, decoder: Decoder, budget: Budget, depth: int
) -> list[Any]:
    if depth > _MAX_MERGE_DEPTH:
        raise fail(where, "too many nested << merges")
    if decoder is not Decoder.YAML_V3:
        spliced: list[tuple[Node, Node]] = []
        for key, value in node.value:
            if not _is_merge(key):
                spliced.append((key, value))
                continue
            for source in reversed(_sources(value, where)):
                spliced.extend(_source(source, where, decoder, budget, depth))
        return spliced
    written = [(k, v) for k, v in node.value if not _is_merge(k)]
    merges = [v for k, v in node.value if _is_merge(k)]
    if not merges:
        return written
    taken = {_ident(k) for k, _ in written}
    for source in _sources(merges[-1], where):
        for key, value in _source(source, where, decoder, budget, depth):
            if _ident(key) not in taken:
                taken.add(_ident(key))
                written.append((key, value))
    return written


def _source(
    source: yaml.MappingNode, where: str, decoder: Decoder, budget: Budget, depth: int
) -> list[Any]:
    found = _merged(source, where, decoder, budget, depth + 1)
    budget.spend(1 + len(found), where)
    return found


def unique(found: list[tuple[Node, Node]], where: str, decoder: Decoder) -> None:
    """yaml.v3 refuses a key written twice in one mapping (the lines are named, not keys)."""
    if decoder is not Decoder.YAML_V3:
        return
    seen: set[object] = set()
    for key, _ in found:
        if _ident(key) in seen:
            line = key.start_mark.line + 1
            raise fail(where, f"the mapping key on line {line} is already defined")
        seen.add(_ident(key))


def key_text(key: Node, where: str, decoder: Decoder) -> str:
    """A mapping key as a Go string field name or map key, as the decoder makes it."""
    if not isinstance(key, yaml.ScalarNode):
        raise fail(where, "mapping keys must be scalars")
    if decoder is not Decoder.SIGS_YAML:
        return to_string(key, where, decoder)
    return _json_key(key, where)


def _json_key(key: yaml.ScalarNode, where: str) -> str:
    found = resolved(key, where, yaml11_bools=True)
    if found.tag == NULL:
        raise fail(where, "a null mapping key cannot be converted to JSON")
    if found.tag == FLOAT:
        assert isinstance(found.value, float)
        text = format_float(found.value, "g", bits=32)
        return {"+Inf": ".inf", "-Inf": "-.inf", "NaN": ".nan"}.get(text, text)
    return str(found.value) if found.tag == BINARY else sigs_text(found, key.value)


def entries(
    node: Node | None, where: str, decoder: Decoder, budget: Budget
) -> list[tuple[str, Node]]:
    return [(key_text(k, where, decoder), v) for k, v in pairs(node, where, decoder, budget)]


def field_name(key: str, folded: bool) -> str:
    """The form a key is matched in: itself, or case-folded for encoding/json's matching."""
    return key.upper().lower() if folded else key


def index(fields: list[tuple[str, Any]], folded: bool) -> dict[str, list[int]]:
    """Positions of each key by the name a Go field would match it under."""
    found: dict[str, list[int]] = {}
    for position, (key, _) in enumerate(fields):
        found.setdefault(field_name(key, folded), []).append(position)
    return found


def pick(fields: list[tuple[str, Any]], positions: list[int], decoder: Decoder, where: str) -> Any:
    """The entry a Go field ends up with among the keys matching it: the last one; with
    encoding/json's case-insensitive names, the last in sorted key order (JSON map order).
    yaml.v3 refuses a field set twice (merged keys never repeat a written one)."""
    if len(positions) > 1 and decoder is Decoder.YAML_V3:
        raise fail(where, "is set more than once")
    if decoder is Decoder.SIGS_YAML:
        return fields[max(positions, key=lambda i: (go_bytes(fields[i][0]), i))][1]
    return fields[positions[-1]][1]
