"""Go's ``encoding/json``: ``json.Marshal`` byte for byte, and decoding as Go decodes.

Usage::

    marshal({"user": "u", "opts": ["ssl<on>"]})   # b'{"opts":["ssl\\u003con\\u003e"],"user":"u"}'
    string_map({"b": "2", "a": "1"})             # '{"a":"1","b":"2"}'  (map[string]string)
    body = loads(raw)                            # numbers stay GoNumber: Decoder.UseNumber()
    marshal(GoStruct(request_id="", data=body))  # struct fields in declaration order

Python values map to Go ones as: None -> nil (``null``), bool, int, float (float64), str,
:class:`GoNumber` (``json.Number``: its text as written), :class:`GoTime` (``time.Time``),
bytes (``[]byte``: standard base64), list/tuple (slice), dict (map with string keys: sorted
by their UTF-8 bytes), :class:`GoStruct` (fields in the order given). :class:`AnyKeyMap` is a
``map[interface{}]interface{}``, which Go refuses to marshal, as are NaN and infinities:
both raise :class:`UnsupportedValue` (whose message never holds the value).

Strings are escaped as Go >= 1.22 escapes them: ``\\"`` ``\\\\`` ``\\b`` ``\\f`` ``\\n``
``\\r`` ``\\t``, other control characters as ``\\u00XX`` (lower-case hex), ``<`` ``>`` ``&``
as ``\\u003c`` ``\\u003e`` ``\\u0026`` (HTML-safe by default), U+2028 and U+2029 as
``\\u2028`` ``\\u2029``, and each byte of invalid UTF-8 (a lone surrogate in Python, as
``surrogateescape`` makes one per byte) as the six characters ``\\ufffd``. Other non-ASCII is
written raw. Floats use ``'f'`` unless the magnitude is < 1e-6 or >= 1e21, then ``'e'`` with
``e-07`` shortened to ``e-7``. Source: Go ``src/encoding/json/encode.go`` (appendString,
floatEncoder, mapEncoder) and ``decode.go`` (unquote: invalid UTF-8 and lone surrogate escapes
become U+FFFD when decoding).
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from agent.providers.common.gostrconv import format_float

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r"}
_ESCAPES["\t"] = "\\t"
_ESCAPES.update({c: f"\\u{ord(c):04x}" for c in map(chr, range(0x20)) if c not in _ESCAPES})
_ESCAPES.update({c: f"\\u{ord(c):04x}" for c in "<>&\u2028\u2029"})
_NEEDS_ESCAPE = re.compile('["\\\\\x00-\x1f<>&\u2028\u2029\ud800-\udfff]')
_SURROGATE = re.compile("[\ud800-\udfff]")
_LITERALS = {None: "null", True: "true", False: "false"}
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?\Z")


class InvalidJSON(ValueError):
    """Text Go's decoder refuses; the message gives the position only."""


class UnsupportedValue(ValueError):
    """What Go's json.Marshal refuses (NaN, infinities, maps with non-string keys)."""


class GoNumber:
    """A JSON number kept as its text, as ``json.Number`` keeps it under ``UseNumber``."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:  # a plain class: made once per number decoded
        self.text = text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GoNumber) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"GoNumber({self.text!r})"

    def __float__(self) -> float:
        return float(self.text)

    def __int__(self) -> int:
        return int(float(self.text)) if any(c in self.text for c in ".eE") else int(self.text)


@dataclass(frozen=True, slots=True)
class GoTime:
    """A ``time.Time``; ``text`` is its RFC 3339 form with nanoseconds, as Go marshals it."""

    text: str


class GoStruct(dict[str, Any]):
    """A Go struct's JSON fields, written in insertion (declaration) order, never sorted."""


class AnyKeyMap(dict[Any, Any]):
    """A ``map[interface{}]interface{}`` (yaml.v2 mappings): json.Marshal fails on it."""


def marshal(value: object) -> bytes:
    """``json.Marshal(value)`` as UTF-8 bytes (surrogates become ``\\ufffd`` escapes)."""
    return marshal_text(value).encode("utf-8")


def marshal_text(value: object) -> str:
    """``json.Marshal(value)`` as text (ASCII-safe except raw non-ASCII characters)."""
    return "".join(_encode(value))


def string_map(mapping: Mapping[str, str] | None) -> str:
    """``json.Marshal`` of a Go ``map[string]string``; None is a nil map (``null``)."""
    return "null" if mapping is None else marshal_text(dict(mapping))


def quote(text: str) -> str:
    """One Go JSON string literal, quotes included."""
    if not _NEEDS_ESCAPE.search(text):
        return f'"{text}"'
    return '"' + _NEEDS_ESCAPE.sub(_escape, text) + '"'


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return "\\ufffd" if "\ud800" <= char <= "\udfff" else _ESCAPES[char]


def format_number(value: float) -> str:
    """encoding/json's float64 text; raises UnsupportedValue for NaN and infinities."""
    if math.isnan(value) or math.isinf(value):
        raise UnsupportedValue("json: unsupported value: NaN or infinity")
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        text = format_float(value, "e")
        head, _, exponent = text.partition("e")
        if exponent.startswith("-0"):
            exponent = "-" + exponent[2:]
        return f"{head}e{exponent}"
    return format_float(value, "f")


def _encode(value: object) -> Iterator[str]:
    if isinstance(value, Mapping):
        yield from _encode_mapping(value)
    elif isinstance(value, list | tuple):
        yield "["
        for index, item in enumerate(value):
            if index:
                yield ","
            yield from _encode(item)
        yield "]"
    else:
        yield _scalar(value)


def _scalar(value: object) -> str:
    if value is None or value is True or value is False:
        return _LITERALS[value]
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_number(value)
    return _typed(value)


def _typed(value: object) -> str:
    if isinstance(value, GoNumber):
        return _number_text(value.text)
    if isinstance(value, GoTime):
        return quote(value.text)
    if isinstance(value, bytes | bytearray):
        return quote(base64.b64encode(value).decode("ascii"))
    raise UnsupportedValue(f"json: unsupported type: {type(value).__name__}")


def _encode_mapping(value: Mapping[Any, Any]) -> Iterator[str]:
    if isinstance(value, AnyKeyMap):
        raise UnsupportedValue("json: unsupported type: map[interface {}]interface {}")
    if isinstance(value, GoStruct):
        keys: list[str] = list(value)
    else:
        if not all(isinstance(key, str) for key in value):
            raise UnsupportedValue("json: unsupported type: map with non-string keys")
        keys = sorted(value, key=go_bytes)
    yield "{"
    for index, key in enumerate(keys):
        if index:
            yield ","
        yield quote(key)
        yield ":"
        yield from _encode(value[key])
    yield "}"


def go_bytes(text: str) -> bytes:
    """The bytes a Go string holds: lone surrogates from ``surrogateescape`` are raw bytes."""
    return text.encode("utf-8", "surrogateescape" if _only_escapes(text) else "surrogatepass")


def _only_escapes(text: str) -> bool:
    return all("\udc80" <= c <= "\udcff" for c in _SURROGATE.findall(text))


def _number_text(text: str) -> str:
    # Marshal writes a json.Number as is once it has checked it; "" has always meant 0.
    if text == "":
        return "0"
    if not _NUMBER.match(text):
        raise UnsupportedValue("json: invalid number literal")
    return text


def loads(data: bytes | str, *, use_number: bool = True) -> Any:
    """``json.Unmarshal`` into ``interface{}``: objects become dicts, and invalid UTF-8 or lone
    surrogate escapes U+FFFD.

    Numbers are :class:`GoNumber` (``Decoder.UseNumber``), or with ``use_number=False``
    Python's int and float, for code that computes with them (JMESPath functions) where Go
    would hold a float64. Raises InvalidJSON where Go's decoder fails, including NaN and
    Infinity, which Python would otherwise accept, and nesting deeper than Python's recursion
    limit (Go's limit is 10000 levels; a document between the two is refused here and
    accepted by Go).
    """
    invalid_utf8 = False
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text, invalid_utf8 = data.decode("utf-8", "surrogateescape"), True
    else:
        text = data
    try:
        if use_number:
            value = json.loads(
                text, parse_int=GoNumber, parse_float=GoNumber, parse_constant=_reject_constant
            )
        else:
            value = json.loads(text, parse_constant=_reject_constant)
        # Only lone surrogates need U+FFFD: from invalid bytes, or from \uD800-\uDFFF escapes.
        escaped = "\\ud" in text or "\\uD" in text
        if invalid_utf8 or escaped or (isinstance(data, str) and _SURROGATE.search(data)):
            value = _replace_surrogates(value)
    except json.JSONDecodeError as err:
        raise InvalidJSON(f"invalid JSON at line {err.lineno} column {err.colno}") from None
    except RecursionError:
        raise InvalidJSON("invalid JSON: nested too deeply") from None
    return value


def _reject_constant(name: str) -> object:
    raise InvalidJSON(f"invalid JSON: {name} is not a JSON number")


def _replace_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_replace_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_replace_surrogates(k): _replace_surrogates(v) for k, v in value.items()}
    return value
