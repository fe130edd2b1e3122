"""Scalar decoding behind :mod:`goyaml`: one composed YAML scalar into one Go field type.

Sources: yaml.v3 v3.0.1 and yaml.v2 v2.4.0 ``decode.go`` ``scalar`` (a string field gets the
node's text whatever it resolves to, null leaves the zero value, ints take truncated floats,
yaml.v3's bool fields also take YAML 1.1's words) and sigs.k8s.io/yaml v1.6.0 ``yaml.go``
``convertToJSONableObject`` (numbers and booleans become text for string targets, then
encoding/json decodes: a float with a fraction does not fit an int field).
"""

from __future__ import annotations

import enum
import math
import re

import yaml

from agent.errors import InvalidSecretProviderClass
from agent.providers.common.encoding import InvalidEncodedValue, go_base64
from agent.providers.common.gojson import format_number
from agent.providers.common.gostrconv import format_float
from agent.providers.common.goyaml_scalars import (
    BINARY,
    BOOL,
    FLOAT,
    INT,
    NULL,
    NULL_WORDS,
    STR,
    TIMESTAMP,
    YAML11_BOOL_WORDS,
    Resolved,
    TagMismatch,
    resolve,
)

Node = yaml.Node
PLAIN = "tag:secrets-store-agent,2026:plain"  # a plain scalar without a tag: Go rules type it
_YAML_PREFIX = "tag:yaml.org,2002:"
_STR_TAG = _YAML_PREFIX + "str"
_TRUE_WORDS = frozenset({"y", "Y", "yes", "Yes", "YES", "on", "On", "ON"})
_DECIMAL = re.compile(r"-?[0-9]+\Z")


class Decoder(enum.Enum):
    """The Go YAML library (family) a provider decodes its parameters with."""

    YAML_V3 = "gopkg.in/yaml.v3"  # vault, azure, gcp
    YAML_V2 = "gopkg.in/yaml.v2"
    SIGS_YAML = "sigs.k8s.io/yaml"  # aws; and kubectl (YAML -> JSON) for manifests

    @property
    def yaml11_bools(self) -> bool:
        return self is not Decoder.YAML_V3


class GoYAMLError(InvalidSecretProviderClass):
    """Embedded YAML that upstream's decoder would refuse; the message names the path."""


def fail(where: str, problem: str) -> GoYAMLError:
    return GoYAMLError(f"{where}: {problem}")


def short_tag(tag: str) -> str:
    if tag == PLAIN:
        return ""
    return "!!" + tag[len(_YAML_PREFIX) :] if tag.startswith(_YAML_PREFIX) else tag


def resolved(node: Node, where: str, yaml11_bools: bool) -> Resolved:
    try:
        found = resolve(node.value, short_tag(node.tag), yaml11_bools=yaml11_bools)
    except TagMismatch as err:
        raise fail(where, str(err)) from None
    if found.tag != BINARY:
        return found
    try:
        data = go_base64(node.value.encode())
    except InvalidEncodedValue:
        raise fail(where, "!!binary value contains invalid base64 data") from None
    return Resolved(BINARY, data.decode("utf-8", "surrogateescape"))


def is_null(node: Node | None, yaml11_bools: bool) -> bool:
    if node is None:
        return True
    if not isinstance(node, yaml.ScalarNode):
        return False
    if node.tag == PLAIN:
        return node.value in NULL_WORDS  # the table lookup both libraries do first
    return resolved(node, "", yaml11_bools).tag == NULL


def tag_of(node: Node | None, where: str, yaml11_bools: bool) -> str:
    if node is None:
        return ""
    if isinstance(node, yaml.MappingNode):
        return "!!map"
    if isinstance(node, yaml.SequenceNode):
        return "!!seq"
    return resolved(node, where, yaml11_bools).tag


def describe(node: Node, yaml11_bools: bool) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    try:
        tag = resolved(node, "", yaml11_bools).tag
    except GoYAMLError:
        return "a value with a mismatched tag"
    names = {STR: "a string", INT: "an integer", FLOAT: "a number", BOOL: "a boolean"}
    names |= {NULL: "null", TIMESTAMP: "a timestamp", BINARY: "binary data"}
    return names.get(tag, f"a value tagged {tag}")


def _scalar(node: Node | None, where: str, decoder: Decoder, wanted: str) -> Resolved | None:
    """The typed scalar, or None for an absent or null node; other kinds fail."""
    if node is None:
        return None
    if not isinstance(node, yaml.ScalarNode):
        raise fail(where, f"must be {wanted}, not {describe(node, decoder.yaml11_bools)}")
    found = resolved(node, where, decoder.yaml11_bools)
    return None if found.tag == NULL else found


def to_string(node: Node | None, where: str, decoder: Decoder) -> str:
    if decoder is not Decoder.SIGS_YAML and isinstance(node, yaml.ScalarNode):
        # The common case without typing the scalar: yaml.v2/v3 give a string field the text.
        if node.tag == PLAIN:
            return "" if node.value in NULL_WORDS else str(node.value)
        if node.tag == _STR_TAG:
            return str(node.value)
    found = _scalar(node, where, decoder, "a string")
    if found is None or node is None:
        return ""
    if found.tag == BINARY:
        return str(found.value)
    if decoder is Decoder.SIGS_YAML:
        return sigs_text(found, node.value)
    return str(node.value)  # yaml.v2 and v3: the literal text, whatever it resolves to


def sigs_text(found: Resolved, text: str) -> str:
    if found.tag == BOOL:
        return "true" if found.value else "false"
    if found.tag == INT:
        return str(found.value)
    if found.tag == FLOAT:
        assert isinstance(found.value, float)
        return format_float(found.value, "g", bits=32)
    return text  # strings, and timestamps: yaml.v2 hands those over as text


def to_integer(node: Node | None, where: str, decoder: Decoder, *, bits: int, signed: bool) -> int:
    found = _scalar(node, where, decoder, "an integer")
    if found is None:
        return 0
    if found.tag == INT:
        assert isinstance(found.value, int)
        number = found.value
    elif found.tag == FLOAT:
        assert isinstance(found.value, float)
        number = _float_to_int(found.value, where, decoder)
    else:
        assert node is not None
        raise fail(where, f"must be an integer, not {describe(node, decoder.yaml11_bools)}")
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not low <= number <= high:
        raise fail(where, f"must be an integer from {low} to {high}")
    return number


def _float_to_int(value: float, where: str, decoder: Decoder) -> int:
    if not math.isfinite(value):
        raise fail(where, "must be an integer, not an infinite or NaN number")
    if decoder is not Decoder.SIGS_YAML:
        return math.trunc(value)  # Go's int64(f): yaml.v2 and v3 drop the fraction
    # sigs.k8s.io/yaml re-encodes the float as JSON; encoding/json then wants integer text.
    text = format_number(value)
    if not _DECIMAL.match(text):
        raise fail(where, "must be an integer, not a number with a fraction or exponent")
    return int(text)


def to_boolean(node: Node | None, where: str, decoder: Decoder) -> bool:
    found = _scalar(node, where, decoder, "a boolean")
    if found is None:
        return False
    if found.tag == BOOL:
        return bool(found.value)
    # yaml.v3 keeps YAML 1.1's words for typed bool fields only (decode.go "compatibility").
    if decoder is Decoder.YAML_V3 and found.value in YAML11_BOOL_WORDS:
        return found.value in _TRUE_WORDS
    assert node is not None
    raise fail(where, f"must be a boolean, not {describe(node, decoder.yaml11_bools)}")
