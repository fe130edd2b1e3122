"""How Go's YAML libraries type one scalar: ``resolve.go`` of yaml.v2 v2.4.0 and yaml.v3 v3.0.1.

Usage::

    resolve("0123", "", yaml11_bools=False)   # Resolved("!!int", 83): leading 0 is octal
    resolve("on", "", yaml11_bools=True)      # Resolved("!!bool", True): yaml.v2 only
    resolve("on", "", yaml11_bools=False)     # Resolved("!!str", "on"): yaml.v3

Both libraries (and so sigs.k8s.io/yaml, which runs yaml.v2 underneath) type a plain scalar
the same way except for booleans: they look the whole text up in a table (``true``,
``false``, ``~``/``null``/empty as null, ``.inf``, ``.nan``, ``<<``; yaml.v2 adds YAML 1.1's
``y``/``yes``/``on``/``n``/``no``/``off`` in three casings), then, when the first character
is a digit or a sign, try a timestamp, ``strconv.ParseInt(s, 0, 64)`` and ``ParseUint`` with
underscores removed (so ``0123`` is octal 83, ``0o17``, ``0x1F`` and ``0b101`` work, ``09``
is not an int), and a float matching ``^[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?$``
that does not overflow. Sexagesimal numbers (``1:30``) are deliberately unsupported by both:
they stay strings. An explicit tag must agree with what the text resolves to, except that an
int may be tagged ``!!float``.
"""

from __future__ import annotations

import calendar
import math
import re
from dataclasses import dataclass

from agent.providers.common.gojson import GoTime
from agent.providers.common.gostrconv import parse_int, parse_uint

STR, INT, FLOAT, BOOL, NULL = "!!str", "!!int", "!!float", "!!bool", "!!null"
TIMESTAMP, BINARY, MERGE = "!!timestamp", "!!binary", "!!merge"
_RESOLVABLE = frozenset({"", STR, BOOL, INT, FLOAT, NULL, TIMESTAMP})

_TABLE: dict[str, tuple[str, object]] = {
    **dict.fromkeys(("true", "True", "TRUE"), (BOOL, True)),
    **dict.fromkeys(("false", "False", "FALSE"), (BOOL, False)),
    **dict.fromkeys(("", "~", "null", "Null", "NULL"), (NULL, None)),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), (FLOAT, math.nan)),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), (FLOAT, math.inf)),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), (FLOAT, -math.inf)),
    "<<": (MERGE, "<<"),
}
_YAML11_BOOLS: dict[str, tuple[str, object]] = {
    **dict.fromkeys(("y", "Y", "yes", "Yes", "YES", "on", "On", "ON"), (BOOL, True)),
    **dict.fromkeys(("n", "N", "no", "No", "NO", "off", "Off", "OFF"), (BOOL, False)),
}
_TABLE_V2 = {**_TABLE, **_YAML11_BOOLS}
YAML11_BOOL_WORDS = frozenset(_YAML11_BOOLS)
NULL_WORDS = frozenset(word for word, (tag, _) in _TABLE.items() if tag == NULL)

_YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z")
_DOT_FLOAT = re.compile(r"\.[0-9_]+([eE][-+]?[0-9_]+)?\Z")
# Go's time.Parse of the four layouts yaml tries ("2006-1-2T15:4:5.999999999Z07:00", the same
# with "t", "2006-1-2 15:4:5.999999999", "2006-1-2"): 1-2 digit fields, "." or "," before a
# fraction, one or more spaces matching the layout's space, a zone only after T/t.
_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:(?P<sep>[Tt]| +)(\d{1,2}):(\d{1,2}):(\d{1,2})(?:[.,](\d+))?"
    r"(?P<zone>Z|[-+]\d\d:\d\d)?)?\Z",
    re.ASCII,
)


@dataclass(frozen=True, slots=True)
class Resolved:
    tag: str  # short tag: "!!str", "!!int", ... or an unresolvable tag as written
    value: object  # None, bool, int, float, str or GoTime


class TagMismatch(ValueError):
    """An explicit tag the text does not resolve to (``!!int abc``)."""

    def __init__(self, resolved: str, wanted: str) -> None:
        super().__init__(f"cannot decode {resolved} as a {wanted}")


def resolve(text: str, tag: str, *, yaml11_bools: bool) -> Resolved:
    """Type ``text``; ``tag`` is "" for a plain scalar without a tag, else the short tag."""
    if tag not in _RESOLVABLE:
        return Resolved(tag, text)
    if tag == STR:
        return Resolved(STR, text)
    found = _resolve_plain(text, yaml11_bools, timestamps=tag in ("", TIMESTAMP))
    if tag in ("", found.tag):
        return found
    if tag == FLOAT and found.tag == INT:
        assert isinstance(found.value, int)
        return Resolved(FLOAT, float(found.value))
    raise TagMismatch(found.tag, tag)


def _resolve_plain(text: str, yaml11_bools: bool, *, timestamps: bool) -> Resolved:
    hit = (_TABLE_V2 if yaml11_bools else _TABLE).get(text)
    if hit is not None:
        return Resolved(*hit)
    first = text[:1]
    if first == ".":
        if _DOT_FLOAT.match(text):
            number = _finite_float(text)
            if number is not None:
                return Resolved(FLOAT, number)
    elif first in ("+", "-") or "0" <= first <= "9":
        return _resolve_number(text, timestamps=timestamps)
    return Resolved(STR, text)


def _resolve_number(text: str, *, timestamps: bool) -> Resolved:
    if timestamps:
        moment = parse_timestamp(text)
        if moment is not None:
            return Resolved(TIMESTAMP, moment)
    plain = text.replace("_", "")
    integer = parse_int(plain)
    if integer is None:
        integer = parse_uint(plain)
    if integer is not None:
        return Resolved(INT, integer)
    if _YAML_FLOAT.match(plain):
        number = _finite_float(plain)
        if number is not None:
            return Resolved(FLOAT, number)
    return Resolved(STR, text)


def _finite_float(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    # strconv.ParseFloat reports overflow as an error: the scalar then stays a string.
    return None if math.isinf(number) else number


def parse_timestamp(text: str) -> GoTime | None:
    """A timestamp as yaml's parseTimestamp accepts it, as ``time.Time`` marshals to JSON."""
    match = _TIMESTAMP.match(text)
    if match is None:
        return None
    year, month, day, _, hour, minute, second, fraction, _ = match.groups()
    separator, zone = match.group("sep"), match.group("zone")
    if separator is not None and (separator in "Tt") != (zone is not None):
        return None  # the T layouts need a zone; the space layout takes none
    y, mo, d = int(year), int(month), int(day)
    # Year 0 is a leap year in Go's proleptic calendar, like 2000; Python has no year 0.
    if not 1 <= mo <= 12 or not 1 <= d <= calendar.monthrange(y or 2000, mo)[1]:
        return None
    h, mi, s = (int(hour), int(minute), int(second)) if hour else (0, 0, 0)
    if h > 23 or mi > 59 or s > 59:
        return None
    nanos = (fraction or "")[:9].rstrip("0")
    offset = "Z"
    if zone and zone != "Z":
        zone_hours, zone_minutes = int(zone[1:3]), int(zone[4:6])
        if zone_hours > 24 or zone_minutes > 60:
            return None
        minutes = zone_hours * 60 + zone_minutes
        if minutes:
            offset = f"{zone[0]}{minutes // 60:02d}:{minutes % 60:02d}"
    clock = f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}"
    return GoTime(f"{clock}.{nanos}{offset}" if nanos else f"{clock}{offset}")
