"""``gostrconv`` parses and formats as Go's ``strconv`` (``atoi.go``, ``ftoa.go``) does."""

from __future__ import annotations

import math

import pytest

from agent.providers.common.gostrconv import format_float, parse_bool, parse_int, parse_uint


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("0123", 83),
        ("0o17", 15),
        ("0O17", 15),
        ("0x1F", 31),
        ("0b101", 5),
        ("+7", 7),
        ("-0x10", -16),
        ("9223372036854775807", 2**63 - 1),
        ("-9223372036854775808", -(2**63)),
        ("09", None),
        ("0x", None),
        ("0b", None),
        ("", None),
        ("-", None),
        ("1_000", None),  # the YAML resolvers strip "_" before they call ParseInt
        ("9223372036854775808", None),
        (" 1", None),
        ("\u0661", None),  # Python's int() would take an Arabic-Indic digit; Go does not
    ],
)
def test_parse_int(text: str, value: int | None) -> None:
    assert parse_int(text) == value


def test_parse_uint() -> None:
    assert parse_uint("18446744073709551615") == 2**64 - 1
    assert parse_uint("18446744073709551616") is None
    assert parse_uint("+1") is None  # ParseUint takes no sign
    assert parse_uint("0777", bits=8) is None


@pytest.mark.parametrize(
    ("value", "fmt", "bits", "text"),
    [
        (1.1, "g", 32, "1.1"),
        (123456789.0, "g", 32, "1.2345679e+08"),
        (123456789.0, "g", 64, "1.23456789e+08"),
        (100000.0, "g", 64, "100000"),
        (1e6, "g", 64, "1e+06"),
        (0.0001, "g", 64, "0.0001"),
        (0.00001, "g", 64, "1e-05"),
        (0.0, "g", 64, "0"),
        (-0.0, "g", 32, "-0"),
        (0.0, "e", 64, "0e+00"),
        (1e100, "e", 64, "1e+100"),
        (1.5, "e", 64, "1.5e+00"),
        (1e21, "f", 64, "1000000000000000000000"),
        (0.000123, "f", 64, "0.000123"),
        (1e39, "g", 32, "+Inf"),  # beyond float32
        (math.inf, "g", 64, "+Inf"),
        (-math.inf, "g", 64, "-Inf"),
        (math.nan, "g", 64, "NaN"),
        (16777217.0, "g", 32, "1.6777216e+07"),  # rounds to the nearest float32
    ],
)
def test_format_float(value: float, fmt: str, bits: int, text: str) -> None:
    assert format_float(value, fmt, bits=bits) == text  # type: ignore[arg-type]


def test_parse_bool_takes_exactly_go_spellings() -> None:
    for text in ("1", "t", "T", "TRUE", "true", "True"):
        assert parse_bool(text) is True
    for text in ("0", "f", "F", "FALSE", "false", "False"):
        assert parse_bool(text) is False
    for text in ("", "yes", "on", "tRUE", " true", "2"):
        assert parse_bool(text) is None
