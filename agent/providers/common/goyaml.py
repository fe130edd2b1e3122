"""Providers' embedded YAML (``objects``, ``secrets``, Azure's ``array:``) decoded as upstream.

Usage::

    doc = load(attributes["objects"], Decoder.YAML_V3, where="objects")
    for item in doc.sequence():                  # Values named "objects[0]", "objects[1]", ...
        fields = item.struct()                   # a Go struct: fields matched as the library does
        name = fields.string("objectName")       # "" when absent or null, as Go's zero value
        mode = fields.integer("filePermission", bits=32, signed=False)  # None when absent/null
        args = fields.get("secretArgs")          # a Value (or None): .any(), .string_map(), ...
        ignored = fields.unknown(KNOWN_FIELDS)   # names present that no Go field takes

Every error is a :class:`GoYAMLError` (an ``InvalidSecretProviderClass``) whose message starts
with the path (``objects[2].filePermission: must be an integer, not a string``) and never
quotes a value, which may be secret (``secretArgs``).
A text of more YAML events than ``goyaml_limits.MAX_EVENTS`` is refused before any node is
composed, and the Values of one text share one budget (aliases and ``<<`` merges included).

Which decoder each upstream provider uses (read from their sources, mid 2026):

- hashicorp/vault-csi-provider ``internal/config/config.go``: gopkg.in/yaml.v3 v3.0.1
  ``yaml.Unmarshal(objects, &[]Secret)``; string fields, ``FilePermission os.FileMode``
  (uint32), ``SecretArgs map[string]interface{}``.
- Azure/secrets-store-csi-driver-provider-azure ``pkg/provider/types/parameters.go`` and
  ``pkg/provider/provider.go``: yaml.v3 into ``StringArray{Array []string `yaml:"array"`}``,
  then each item again with yaml.v3 into ``KeyVaultObject`` (strings, ``ObjectVersionHistory
  int32``; ``filePermission`` is a string there).
- GoogleCloudPlatform/secrets-store-csi-driver-provider-gcp ``config/config.go``: yaml.v3 into
  ``[]*Secret`` (strings, ``Mode *int32``); ``util/key_extractor.go``: yaml.v3 into
  ``map[string]any`` for ``extractYAMLKey`` (the value must resolve to a string: use ``any()``).
- aws/secrets-store-csi-driver-provider-aws ``provider/secret_descriptor.go``:
  sigs.k8s.io/yaml v1.6.0 into ``[]*SecretDescriptor`` (all strings, ``filePermission`` too).
  It does NOT fail on an unquoted number in a string field: its ``yamlToJSONTarget`` resolves
  the scalar with yaml.v2 (YAML 1.1 booleans, ``0123`` octal) and, because the target field is
  a string, rewrites the number or boolean as text: ``strconv.FormatInt`` (``0123`` -> "83"),
  ``FormatFloat(f, 'g', -1, 32)`` (``1.10`` -> "1.1", ``123456789.0`` -> "1.2345679e+08"),
  "true"/"false" (``on`` -> "true"). Field names then match case-insensitively (encoding/json).

How a plain scalar reaches a Go field, per :class:`Decoder` (``goyaml_scalars`` types it):

==================  ========================  ============  ================================
                    YAML_V3                   YAML_V2       SIGS_YAML
==================  ========================  ============  ================================
string field        literal text              literal text  text of the typed value (above)
``~``/``null``/""   "" (zero value)           ""            "" (JSON null leaves the zero)
int field           ``0440`` -> 288, ``0o440``, ``0x1F``; floats truncate (v2/v3), a
                    fraction fails (sigs: encoding/json); strings and booleans fail
bool field          true/false, and v3 also   YAML 1.1      YAML 1.1 booleans; quoted fails
                    the YAML 1.1 words
interface{}         typed; timestamps are     typed;        float64 numbers, text times,
                    ``time.Time``             text times    (``json()``: kubectl's view)
duplicate keys      error                     last wins     last wins (sorted key order)
field names         exact                     exact         exact or case-insensitive
==================  ========================  ============  ================================
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import yaml

from agent.providers.common import goyaml_interface as interface
from agent.providers.common import goyaml_mappings as mappings
from agent.providers.common import goyaml_values as values
from agent.providers.common.goyaml_limits import Budget, check_events
from agent.providers.common.goyaml_values import Decoder, GoYAMLError, Node

__all__ = ["Decoder", "GoYAMLError", "Struct", "Value", "load", "load_all"]


class _Resolver(yaml.resolver.BaseResolver):
    """Leaves plain scalars untyped: the Go rules (``goyaml_scalars``) type them later."""

    def resolve(self, kind: type[yaml.Node], value: str | None, implicit: tuple[bool, bool]) -> str:
        if kind is yaml.ScalarNode and implicit[0]:
            return values.PLAIN
        return str(super().resolve(kind, value, implicit))  # type: ignore[no-untyped-call]


# libyaml's parser when PyYAML has it (faster, and the one Go's yaml packages were ported from).
_BaseLoader: type[yaml.BaseLoader] = getattr(yaml, "CBaseLoader", yaml.BaseLoader)


class _Loader(_Resolver, _BaseLoader):  # type: ignore[misc,valid-type]
    """Composes nodes only: nothing is constructed, so no tag can build an object."""


def load(text: str, decoder: Decoder, *, where: str) -> Value:
    """The first document of ``text`` (``yaml.Unmarshal`` reads no further); an empty text
    is a null Value. Raises GoYAMLError for a syntax error (position only, no snippet) and
    for a text too large to compose or to convert (``goyaml_limits``)."""
    budget = Budget()
    for node in _documents(text, where, first=True):
        return Value(node, where, decoder, budget)
    return Value(None, where, decoder, budget)


def load_all(text: str, decoder: Decoder, *, where: str) -> list[Value]:
    """Every document, as kubectl reads a manifest file (``where`` names each by number);
    the limits of ``goyaml_limits`` apply to all of them together."""
    nodes = list(_documents(text, where, first=False))
    budget = Budget()
    if len(nodes) == 1:
        return [Value(nodes[0], where, decoder, budget)]
    return [Value(n, f"{where} (document {i + 1})", decoder, budget) for i, n in enumerate(nodes)]


def _documents(text: str, where: str, *, first: bool) -> Iterator[Node]:
    try:
        check_events(text, where, _Loader, first=first)  # before any node is composed
    except yaml.YAMLError as err:
        raise _invalid(err, where) from None
    loader = _Loader(text)  # type: ignore[call-arg]
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                yield node
    except yaml.YAMLError as err:
        raise _invalid(err, where) from None
    except RecursionError:
        raise GoYAMLError(f"{where}: YAML nested too deeply") from None
    finally:
        loader.dispose()


def _invalid(err: yaml.YAMLError, where: str) -> GoYAMLError:
    mark = err.problem_mark if isinstance(err, yaml.MarkedYAMLError) else None
    at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return GoYAMLError(f"{where}: invalid YAML{at}")


@dataclass(frozen=True, slots=True)
class Value:
    """One node of the document, the path that names it in messages, the decoder whose
    rules apply, and what converting its text may still cost (shared by all the text's
    Values). ``node`` is None for an absent value or an empty document."""

    node: Node | None
    where: str
    decoder: Decoder
    budget: Budget = field(compare=False, repr=False)

    @property
    def is_null(self) -> bool:
        return values.is_null(self.node, self.decoder.yaml11_bools)

    @property
    def tag(self) -> str:
        """What the node is to the decoder: ``!!str``, ``!!int``, ``!!float``, ``!!bool``,
        ``!!null``, ``!!timestamp``, ``!!binary``, a custom tag, ``!!map`` or ``!!seq``;
        "" when absent. (yaml.v3 types ``on`` as ``!!str``, yaml.v2 as ``!!bool``.)"""
        return values.tag_of(self.node, self.where, self.decoder.yaml11_bools)

    def string(self) -> str:
        """As into a Go ``string`` field."""
        return values.to_string(self.node, self.where, self.decoder)

    def integer(self, *, bits: int = 64, signed: bool = True) -> int:
        """As into a Go ``intN``/``uintN`` field (``os.FileMode`` is ``bits=32, signed=False``)."""
        return values.to_integer(self.node, self.where, self.decoder, bits=bits, signed=signed)

    def boolean(self) -> bool:
        """As into a Go ``bool`` field."""
        return values.to_boolean(self.node, self.where, self.decoder)

    def sequence(self) -> list[Value]:
        """As into a Go slice: the items, named ``where[i]``; null is an empty slice."""
        return list(self.each())

    def each(self) -> Iterator[Value]:
        """The items of :meth:`sequence` made one at a time, so that a long list's items need
        not all be held at once."""
        where, decoder, budget = self.where, self.decoder, self.budget
        items = mappings.items(self.node, where, decoder)
        budget.spend(len(items), where)
        for i, item in enumerate(items):
            yield Value(item, f"{where}[{i}]", decoder, budget)

    def strings(self) -> list[str]:
        """As into ``[]string``."""
        return [item.string() for item in self.sequence()]

    def struct(self) -> Struct:
        """As into a Go struct; null gives a struct with no fields set."""
        where, decoder, budget = self.where, self.decoder, self.budget
        entries = mappings.entries(self.node, where, decoder, budget)
        budget.spend(len(entries), where)
        fields = [(k, Value(v, f"{where}.{k}", decoder, budget)) for k, v in entries]
        return Struct(fields, where, decoder)

    def string_map(self) -> dict[str, str]:
        """As into ``map[string]string`` (a repeated key: the last wins, or yaml.v3 fails)."""
        return {name: value.string() for name, value in self._map_entries()}

    def any_map(self) -> dict[str, object]:
        """As into ``map[string]interface{}`` (keys as into a string, values as ``any()``)."""
        return {name: value.any() for name, value in self._map_entries()}

    def _map_entries(self) -> list[tuple[str, Value]]:
        where, decoder, budget = self.where, self.decoder, self.budget
        found = mappings.pairs(self.node, where, decoder, budget)
        budget.spend(len(found), where)
        mappings.unique(found, where, decoder)
        named = [(mappings.key_text(k, where, decoder), v) for k, v in found]
        return [(name, Value(v, f"{where}.{name}", decoder, budget)) for name, v in named]

    def any(self) -> object:
        """As into ``interface{}``: None, bool, int, float, str, GoTime, list, dict, or an
        AnyKeyMap (a map Go cannot marshal to JSON); for SIGS_YAML numbers are floats."""
        return interface.to_any(self.node, self.where, self.decoder, self.budget)

    def json(self) -> object:
        """sigs.k8s.io/yaml's YAMLToJSON of this node, as kubectl sends a manifest: keys made
        strings, integers kept, times as text. Raises GoYAMLError where it fails."""
        return interface.to_json(self.node, self.where, self.budget)


class Struct:
    """A mapping read as a Go struct: look fields up by their Go (yaml or json tag) name."""

    def __init__(self, entries: list[tuple[str, Value]], where: str, decoder: Decoder) -> None:
        self._entries = entries
        self._where = where
        self._decoder = decoder
        self._folded = decoder is Decoder.SIGS_YAML  # encoding/json: case-insensitive names
        self._index = mappings.index(entries, self._folded)

    def items(self) -> list[tuple[str, Value]]:
        """(key as text, value) in document order; merged (``<<``) keys included."""
        return list(self._entries)

    def get(self, name: str) -> Value | None:
        """The value the field ``name`` receives, or None when no key matches it."""
        positions = self._index.get(mappings.field_name(name, self._folded))
        if not positions:
            return None
        picked: Value = mappings.pick(
            self._entries, positions, self._decoder, f"{self._where}.{name}"
        )
        return picked

    def string(self, name: str, *, required: bool = False) -> str:
        value = self.get(name)
        text = value.string() if value is not None else ""
        if required and not text:
            raise GoYAMLError(f"{self._where}.{name}: is required")
        return text

    def integer(self, name: str, *, bits: int = 64, signed: bool = True) -> int | None:
        """None when absent or null (a Go pointer field stays nil); else as ``Value.integer``."""
        value = self.get(name)
        if value is None or value.is_null:
            return None
        return value.integer(bits=bits, signed=signed)

    def boolean(self, name: str) -> bool | None:
        value = self.get(name)
        if value is None or value.is_null:
            return None
        return value.boolean()

    def unknown(self, known: Iterable[str]) -> list[str]:
        """Keys no field in ``known`` takes (matched as ``get`` matches), in document order."""
        fields = {mappings.field_name(field, self._folded) for field in known}
        return [
            key for key, _ in self._entries if mappings.field_name(key, self._folded) not in fields
        ]
