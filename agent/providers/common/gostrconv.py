"""Go's ``strconv`` where upstream providers' bytes depend on it.

Usage::

    parse_bool("True")                 # True: strconv.ParseBool; None for "yes", "on", ""
    parse_int("0440")                  # 288: strconv.ParseInt(s, 0, 64), Go-syntax prefixes
    parse_uint("0x1F", bits=32)        # 31; None when Go returns a syntax or range error
    format_float(1e21, "e")            # "1e+21": strconv.FormatFloat(f, 'e', -1, 64)
    format_float(1.1, "g", bits=32)    # "1.1": the shortest text that round-trips as float32

Only base 0 (the base both YAML libraries call with) and precision -1 (shortest) are offered.
Underscores are not accepted: the YAML resolvers strip them before they parse.

Source: Go ``src/strconv/atob.go`` (exactly 1 t T TRUE true True / 0 f F FALSE false False),
``src/strconv/atoi.go`` (base prefixes ``0b`` ``0o`` ``0x`` need one more digit,
a bare leading ``0`` means octal) and ``src/strconv/ftoa.go`` (``%e`` writes at least two
exponent digits; shortest ``%g`` switches to ``%e`` when the exponent is < -4 or >= 6).
Python's ``repr`` and Go both print the shortest decimal that round-trips, the closest one
when several do, so the digits are the same.
"""

from __future__ import annotations

import math
import struct
from typing import Literal

FloatFormat = Literal["e", "f", "g"]

_DIGITS = {2: frozenset("01"), 8: frozenset("01234567"), 10: frozenset("0123456789")}
_DIGITS[16] = _DIGITS[10] | frozenset("abcdefABCDEF")
_PREFIXES = {"b": 2, "o": 8, "x": 16}


_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_bool(text: str) -> bool | None:
    """``strconv.ParseBool(text)``, or None where Go returns an error (upstream providers parse
    their boolean parameters and variables with it)."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


def parse_uint(text: str, *, bits: int = 64) -> int | None:
    """``strconv.ParseUint(text, 0, bits)``, or None where Go returns an error."""
    if not text:
        return None
    base, digits = 10, text
    if text[0] == "0":
        prefix = _PREFIXES.get(text[1:2].lower()) if len(text) >= 3 else None
        base, digits = (prefix, text[2:]) if prefix else (8, text[1:])
    if not set(digits) <= _DIGITS[base]:
        return None
    value = int(digits, base) if digits else 0  # "0" alone: octal with no digits left
    return value if value < 1 << bits else None


def parse_int(text: str, *, bits: int = 64) -> int | None:
    """``strconv.ParseInt(text, 0, bits)``, or None where Go returns an error."""
    negative = text.startswith("-")
    magnitude = parse_uint(text[1:] if text[:1] in "+-" else text, bits=bits)
    if magnitude is None:
        return None
    cutoff = 1 << (bits - 1)
    if magnitude > cutoff or (magnitude == cutoff and not negative):
        return None
    return -magnitude if negative else magnitude


def to_float32(value: float) -> float:
    """Go's ``float32(value)``: rounded to nearest, +-Inf beyond float32's range."""
    try:
        return float(struct.unpack("<f", struct.pack("<f", value))[0])
    except OverflowError:
        return math.copysign(math.inf, value)


def format_float(value: float, fmt: FloatFormat = "g", *, bits: Literal[32, 64] = 64) -> str:
    """``strconv.FormatFloat(value, fmt, -1, bits)``."""
    if math.isnan(value):
        return "NaN"
    if bits == 32:
        value = to_float32(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    digits, point = _shortest(abs(value), bits)
    count = len(digits)
    if fmt == "e" or (fmt == "g" and not -4 <= point - 1 < 6):
        return sign + _fixed_e(digits, point, max(count - 1, 0))
    return sign + _fixed_f(digits, point, max(count - point, 0))


def _shortest(value: float, bits: int) -> tuple[str, int]:
    """Shortest round-tripping digits (no leading or trailing zeros) and the decimal point
    position: ``value == 0.DIGITS * 10**point``. Zero has no digits."""
    if value == 0:
        return "", 0
    if bits == 64:
        text = repr(value)
    else:
        text = next(
            candidate
            for precision in range(9)  # 9 significant digits always round-trip a float32
            if to_float32(float(candidate := f"{value:.{precision}e}")) == value
        )
    mantissa, _, exponent = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    point = len(whole) + int(exponent or 0)
    significant = digits.lstrip("0")
    point -= len(digits) - len(significant)  # leading zeros move the point left
    return significant.rstrip("0"), point


def _fixed_e(digits: str, point: int, precision: int) -> str:
    mantissa = digits[:1] or "0"
    if precision > 0:
        mantissa += "." + digits[1 : precision + 1].ljust(precision, "0")
    exponent = point - 1 if digits else 0
    sign = "-" if exponent < 0 else "+"
    return f"{mantissa}e{sign}{abs(exponent):02d}"


def _fixed_f(digits: str, point: int, precision: int) -> str:
    whole = (digits[:point].ljust(point, "0")) if point > 0 else "0"
    if precision <= 0:
        return whole
    fraction = "".join(
        digits[point + i] if 0 <= point + i < len(digits) else "0" for i in range(precision)
    )
    return f"{whole}.{fraction}"
