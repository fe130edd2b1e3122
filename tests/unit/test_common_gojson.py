"""``gojson`` must produce the bytes Go's ``json.Marshal`` produces, and decode as Go does.

Expected strings are what Go >= 1.22 (upstream providers build with 1.24-1.26) prints, derived
from ``src/encoding/json/encode.go``: ``appendString`` (short escapes including ``\\b`` and
``\\f``, ``\\u00XX`` in lower-case hex, ``<`` ``>`` ``&`` and U+2028/2029 escaped, each invalid
UTF-8 byte written as the six characters ``\\ufffd``), ``floatEncoder`` (``'f'`` between 1e-6
and 1e21, else ``'e'`` with ``e-07`` shortened to ``e-7``) and ``mapEncoder`` (keys sorted by
their bytes). Plugins may compare or hash the attributes text, so equivalent JSON is not enough.
"""

from __future__ import annotations

import json
import math

import pytest

from agent.model import ObjectVersion, PodIdentity, ProviderRequest
from agent.providers.common.gojson import (
    AnyKeyMap,
    GoNumber,
    GoStruct,
    GoTime,
    InvalidJSON,
    UnsupportedValue,
    loads,
    marshal,
    string_map,
)
from agent.providers.plugin_messages import mount_request


@pytest.mark.parametrize(
    ("value", "go_output"),
    [
        (None, "null"),
        ({}, "{}"),
        ({"b": "2", "a": "1"}, '{"a":"1","b":"2"}'),
        # Sorted by UTF-8 bytes: upper case before lower case, multi-byte after ASCII.
        (
            {"é": "1", "z": "2", "Z": "3", "a": "4", "🔑": "5", "\uffff": "6"},
            '{"Z":"3","a":"4","z":"2","é":"1","\uffff":"6","🔑":"5"}',
        ),
        # HTML characters are escaped, "/" is not.
        (
            {"html": '<a href="x">&</a>'},
            r'{"html":"\u003ca href=\"x\"\u003e\u0026\u003c/a\u003e"}',
        ),
        ({"<k>": "v"}, r'{"\u003ck\u003e":"v"}'),
        # Short escapes (\b and \f since Go 1.22), \u00XX in lower-case hex, DEL raw.
        ({"c": '\n\r\t\b\f\x00\x1f\x7f"\\'}, '{"c":"\\n\\r\\t\\b\\f\\u0000\\u001f\x7f\\"\\\\"}'),
        # Other non-ASCII is written raw, except the JavaScript line terminators.
        ({"u": "é日本🔑\u2028\u2029"}, '{"u":"é日本🔑\\u2028\\u2029"}'),
        # Invalid UTF-8 (one lone surrogate per byte in Python) becomes the escape \ufffd.
        ({"bad": "a\udc80\udcffb"}, r'{"bad":"a\ufffd\ufffdb"}'),
        (
            {"csi.storage.k8s.io/serviceAccount.tokens": '{"aud":{"token":"t"}}'},
            r'{"csi.storage.k8s.io/serviceAccount.tokens":"{\"aud\":{\"token\":\"t\"}}"}',
        ),
    ],
)
def test_string_map_matches_go(value: dict[str, str] | None, go_output: str) -> None:
    assert string_map(value) == go_output


def test_output_is_valid_json_with_the_same_content() -> None:
    value = {"k&<>": "v\u2028\n", "objects": "array:\n  - |\n    objectName: a\n"}
    assert json.loads(string_map(value)) == value


@pytest.mark.parametrize(
    ("number", "go_output"),
    [
        (0.0, "0"),
        (-0.0, "-0"),
        (1.0, "1"),
        (1.5, "1.5"),
        (0.1, "0.1"),
        (100.0, "100"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (123456789e15, "1.23456789e+23"),
        (1e-6, "0.000001"),
        (1e-7, "1e-7"),
        (1.5e-10, "1.5e-10"),
        (-2.5e-300, "-2.5e-300"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
    ],
)
def test_floats_as_go_writes_them(number: float, go_output: str) -> None:
    assert marshal(number) == go_output.encode()


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_unsupported(number: float) -> None:
    with pytest.raises(UnsupportedValue):
        marshal({"x": number})


def test_values_of_every_kind() -> None:
    value = {
        "n": None,
        "t": True,
        "i": -42,
        "big": 2**64,
        "num": GoNumber("1.50"),  # json.Number: written exactly as it was read
        "time": GoTime("2024-01-01T00:00:00Z"),
        "bytes": b"\x00\xff",  # []byte: standard base64
        "list": [1, "a", [], {}],
        "struct": GoStruct(z="last?", a="no: declaration order"),
    }
    assert marshal(value) == (
        b'{"big":18446744073709551616,"bytes":"AP8=","i":-42,"list":[1,"a",[],{}],"n":null,'
        b'"num":1.50,"struct":{"z":"last?","a":"no: declaration order"},'
        b'"t":true,"time":"2024-01-01T00:00:00Z"}'
    )


def test_maps_go_cannot_marshal() -> None:
    with pytest.raises(UnsupportedValue, match="map"):
        marshal({"a": AnyKeyMap({"k": "v"})})
    with pytest.raises(UnsupportedValue, match="map"):
        marshal({1: "v"})
    with pytest.raises(UnsupportedValue, match="number"):
        marshal(GoNumber("1e"))


def test_loads_keeps_number_text_and_coerces_strings_as_go() -> None:
    decoded = loads(
        b'{"a": 1.0, "b": [1e5, -0, 12345678901234567890], "c": "\\ud800x", "d": "\xff"}'
    )
    assert decoded == {
        "a": GoNumber("1.0"),
        "b": [GoNumber("1e5"), GoNumber("-0"), GoNumber("12345678901234567890")],
        "c": "\ufffdx",  # a lone surrogate escape decodes to U+FFFD in Go
        "d": "\ufffd",  # so does invalid UTF-8
    }
    assert marshal(decoded) == (
        '{"a":1.0,"b":[1e5,-0,12345678901234567890],"c":"\ufffdx","d":"\ufffd"}'.encode()
    )


@pytest.mark.parametrize("text", ["NaN", '{"a": Infinity}', "[1,]", '{"a":1', "\ufeff{}"])
def test_loads_refuses_what_go_refuses(text: str) -> None:
    with pytest.raises(InvalidJSON, match=r"^invalid JSON"):
        loads(text)


@pytest.mark.parametrize(
    "text", ["[" * 20_000 + "]" * 20_000, '{"a":' * 20_000 + "1" + "}" * 20_000]
)
def test_loads_refuses_nesting_deeper_than_go_allows(text: str) -> None:
    # Go stops at 10000 levels ("exceeded max depth"); Python's parser would raise
    # RecursionError, which no caller expects from a decoder.
    with pytest.raises(InvalidJSON, match=r"^invalid JSON: nested too deeply"):
        loads(text)


def request(**overrides: object) -> ProviderRequest:
    fields: dict[str, object] = {
        "attributes": {"objects": "x", "secretProviderClass": "spc"},
        "secrets": {},
        "identity": PodIdentity("default", "web-0", "uid"),
        "target_path": "/pods/uid/volumes/kubernetes.io~csi/v/mount",
    }
    fields.update(overrides)
    return ProviderRequest(**fields)  # type: ignore[arg-type]


def test_mount_request_fields_as_upstream_sends_them() -> None:
    message = mount_request(request())
    assert message.attributes == '{"objects":"x","secretProviderClass":"spc"}'
    assert message.secrets == "null"  # no nodePublishSecretRef: Go's nil map
    assert message.permission == "420"
    assert message.target_path == "/pods/uid/volumes/kubernetes.io~csi/v/mount"
    assert message.current_object_version == []


def test_mount_request_with_secrets_mode_and_versions() -> None:
    message = mount_request(
        request(
            secrets={"password": "p&w", "client-id": "id"},
            default_mode=0o440,
            current_versions=(ObjectVersion("secret/a", "3"),),
        )
    )
    assert message.secrets == r'{"client-id":"id","password":"p\u0026w"}'
    assert message.permission == "288"
    assert [(v.id, v.version) for v in message.current_object_version] == [("secret/a", "3")]
