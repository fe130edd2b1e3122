"""Decoding the Azure provider's YAML the way its Go library (gopkg.in/yaml.v3) does.

Upstream unmarshals ``objects`` into ``struct{ Array []string `yaml:"array"` }`` and each entry
into a struct of string fields plus the int32 ``objectVersionHistory``. yaml.v3 gives a string
field the scalar's text as written (``objectVersion: 0123`` stays "0123", ``filePermission:
0644`` stays "0644"), so scalars are read from the composed node graph, never from PyYAML's
YAML 1.1 typed values. Messages name the field and YAML position, never the text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import yaml

from agent.errors import InvalidSecretProviderClass

_NULL = "tag:yaml.org,2002:null"
_STR = "tag:yaml.org,2002:str"
_INT32 = (-(2**31), 2**31 - 1)
_DECIMAL = re.compile(r"^[-+]?[0-9]+$")


@dataclass(frozen=True, slots=True)
class Fields:
    """The scalar fields of one YAML mapping: strings by key, and the integer fields' nodes."""

    strings: dict[str, str] = field(default_factory=dict)
    nodes: dict[str, yaml.Node] = field(default_factory=dict)


def _compose(text: str, where: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InvalidSecretProviderClass(f"{where}: invalid YAML{at}") from None


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == _NULL


def _mapping(node: yaml.Node | None, where: str) -> list[tuple[yaml.Node, yaml.Node]]:
    if node is None or _is_null(node):
        return []
    if not isinstance(node, yaml.MappingNode):
        raise InvalidSecretProviderClass(f"{where}: must be a YAML mapping")
    return list(node.value)


def _scalar_text(node: yaml.Node, where: str) -> str:
    if _is_null(node):
        return ""
    if not isinstance(node, yaml.ScalarNode):
        raise InvalidSecretProviderClass(f"{where}: must be a string, not a list or mapping")
    return str(node.value)


def string_array(text: str, *, field: str) -> list[str]:
    """The ``array:`` list of strings of ``text``; empty when absent."""
    for key, value in _mapping(_compose(text, field), field):
        if _scalar_text(key, field) != "array":
            continue
        if _is_null(value):
            return []
        if not isinstance(value, yaml.SequenceNode):
            raise InvalidSecretProviderClass(f"{field}.array: must be a YAML list of strings")
        return [_scalar_text(item, f"{field}.array[{i}]") for i, item in enumerate(value.value)]
    return []


def string_fields(text: str, names: Sequence[str], *, field: str) -> Fields:
    """The mapping ``text``: each key of ``names`` as its scalar text; other keys kept as nodes
    (decoded by their own helpers), unknown keys ignored as yaml.v3 ignores them."""
    fields = Fields()
    for key_node, value in _mapping(_compose(text, field), field):
        key = _scalar_text(key_node, field)
        if key in names:
            fields.strings[key] = _scalar_text(value, f"{field}.{key}")
        else:
            fields.nodes[key] = value
    return fields


def int32_field(fields: Fields, key: str, *, field: str) -> int:
    """An int32 field as yaml.v3 decodes a plain decimal scalar; 0 when absent or null."""
    node = fields.nodes.get(key)
    if node is None or _is_null(node):
        return 0
    where = f"{field}.{key}"
    if not isinstance(node, yaml.ScalarNode) or (node.tag == _STR and node.style):
        raise InvalidSecretProviderClass(f"{where}: must be an integer")
    text = str(node.value)
    if not _DECIMAL.match(text):
        raise InvalidSecretProviderClass(f"{where}: must be an integer")
    value = int(text)
    if not _INT32[0] <= value <= _INT32[1]:
        raise InvalidSecretProviderClass(f"{where}: out of range for int32")
    return value
