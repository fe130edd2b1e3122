"""``encoding`` decodes values as upstream's Go decoders do.

Expectations follow Go's ``src/encoding/base64/base64.go`` (StdEncoding: ``\\r`` and ``\\n``
skipped anywhere, ``=`` padding required, nothing after it, trailing bits not checked) and
``src/encoding/hex/hex.go`` (pairs of either-case hex digits, no whitespace), and the name
comparison of vault-csi-provider ``decodeValue`` / Azure ``getContentBytes``
(``strings.EqualFold``; empty means utf-8).
"""

from __future__ import annotations

import base64

import pytest

from agent.providers.common.encoding import (
    InvalidEncodedValue,
    UnknownEncoding,
    canonical_encoding,
    decode_content,
    go_base64,
    go_hex,
)

PAYLOAD = bytes(range(256)) * 3


def wrapped(data: bytes, width: int = 76) -> bytes:
    """What coreutils ``base64 FILE`` prints: lines of 76 characters and a final newline."""
    text = base64.b64encode(data)
    return b"".join(text[i : i + width] + b"\n" for i in range(0, len(text), width))


@pytest.mark.parametrize(
    "encoded",
    [
        base64.b64encode(PAYLOAD),
        wrapped(PAYLOAD),
        wrapped(PAYLOAD).replace(b"\n", b"\r\n"),  # Windows line ends
        wrapped(PAYLOAD, width=64),  # PEM-style width
        b"\n".join(bytes([c]) for c in base64.b64encode(PAYLOAD)),  # breaks anywhere
    ],
)
def test_base64_skips_line_breaks_like_go(encoded: bytes) -> None:
    assert go_base64(encoded) == PAYLOAD


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        (b"", b""),
        (b"\n", b""),
        (b"QQ==", b"A"),
        (b"QR==", b"A"),
        (b"QUI=\n", b"AB"),
        (b"Q\nQ\n=\n=", b"A"),
    ],
)
def test_base64_accepts(encoded: bytes, decoded: bytes) -> None:
    assert go_base64(encoded) == decoded


@pytest.mark.parametrize(
    "encoded",
    [
        b"QQ",
        b"QQ=",
        b"QQ===",
        b"QQ==QQ==",
        b"Q",
        b"====",
        b"QQ== ",
        b" QQ==",
        b"QQ\t==",
        b"Q-_A",
        b"QUJD\x00",
    ],
)
def test_base64_refuses_like_go(encoded: bytes) -> None:
    with pytest.raises(InvalidEncodedValue) as info:
        go_base64(encoded)
    assert str(info.value) == "not valid base64 (standard alphabet, padded)"  # never the value


def test_hex() -> None:
    assert go_hex(b"68656C6c6f") == b"hello"
    assert go_hex(b"") == b""
    for bad in (b"686", b"68 65", b"6g", b"68\n"):
        with pytest.raises(InvalidEncodedValue):
            go_hex(bad)


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("", "utf-8"),
        ("UTF-8", "utf-8"),
        ("Base64", "base64"),
        ("HEX", "hex"),
        ("ba\u017fe64", "base64"),
    ],
)
def test_names_compare_as_equal_fold(name: str, canonical: str) -> None:
    assert canonical_encoding(name) == canonical


@pytest.mark.parametrize("name", ["utf8", "base-64", "binary", " hex"])
def test_unknown_names(name: str) -> None:
    with pytest.raises(UnknownEncoding, match="must be one of utf-8, base64, hex"):
        canonical_encoding(name)


def test_decode_content() -> None:
    assert decode_content(b"\xff raw", "") == b"\xff raw"  # utf-8 is not validated
    assert decode_content(wrapped(b"x" * 100), "BASE64") == b"x" * 100
    assert decode_content(b"7879", "hex") == b"xy"
