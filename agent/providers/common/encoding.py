"""Decoding a secret's value as upstream providers do (``encoding``/``objectEncoding``).

Usage::

    decode_content(raw, "base64")        # bytes; "" and "utf-8" (any case) pass raw through
    go_base64(b"aGVs\\nbG8=\\n")         # b"hello": Go's base64.StdEncoding.DecodeString
    go_hex(b"68656C6C6F")                # b"hello": Go's hex.DecodeString

Vault (``internal/provider/provider.go`` decodeValue) and Azure (``pkg/provider/provider.go``
getContentBytes) both compare the name with ``strings.EqualFold`` against ``utf-8``,
``base64`` and ``hex``, treat an empty name as ``utf-8`` (bytes unchanged, not validated), and
call ``base64.StdEncoding.DecodeString`` or ``hex.DecodeString``.

Go's standard base64 decoder (``src/encoding/base64/base64.go``) skips every ``\\r`` and
``\\n`` wherever it is, so ``base64 FILE`` output wrapped at 76 columns with a trailing
newline decodes; anything else outside the alphabet, missing or misplaced ``=`` padding, or
text after the padding fails. Non-zero trailing bits are accepted (StdEncoding is not
``Strict``), as Python's decoder accepts them. ``hex.DecodeString`` takes upper and lower
case digits, nothing else, in pairs. Errors never quote the value: it is the secret.
"""

from __future__ import annotations

import base64
import binascii

UTF8, BASE64, HEX = "utf-8", "base64", "hex"
ENCODINGS = (UTF8, BASE64, HEX)
_LINE_BREAKS = bytes.maketrans(b"", b"")


class UnknownEncoding(ValueError):
    """The encoding name is none of ``utf-8``, ``base64``, ``hex`` (any case)."""


class InvalidEncodedValue(ValueError):
    """The value is not valid in the named encoding; the message never holds the value."""


def canonical_encoding(name: str) -> str:
    """``utf-8``, ``base64`` or ``hex`` for ``name`` compared as ``strings.EqualFold`` does
    (empty means ``utf-8``); raises UnknownEncoding naming the accepted spellings."""
    if not name:
        return UTF8
    folded = name.casefold()
    for known in ENCODINGS:
        if folded == known:
            return known
    raise UnknownEncoding(f"must be one of {', '.join(ENCODINGS)}")


def decode_content(raw: bytes, encoding: str) -> bytes:
    """``raw`` decoded per ``encoding``; raises UnknownEncoding or InvalidEncodedValue."""
    name = canonical_encoding(encoding)
    if name == BASE64:
        return go_base64(raw)
    if name == HEX:
        return go_hex(raw)
    return raw


def go_base64(data: bytes) -> bytes:
    """``base64.StdEncoding.DecodeString``: line breaks skipped, padding required."""
    try:
        return base64.b64decode(data.translate(_LINE_BREAKS, b"\r\n"), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidEncodedValue("not valid base64 (standard alphabet, padded)") from None


def go_hex(data: bytes) -> bytes:
    """``hex.DecodeString``: pairs of hex digits of either case and nothing else."""
    try:
        return binascii.unhexlify(data)
    except (binascii.Error, ValueError):
        raise InvalidEncodedValue("not valid hex (pairs of digits 0-9, a-f)") from None
