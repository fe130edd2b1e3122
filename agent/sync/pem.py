"""PEM blocks as Go's ``encoding/pem`` reads and writes them (RFC 7468 with Go's leniency).

Upstream splits ``kubernetes.io/tls`` files with ``pem.Decode`` in a loop, so which blocks are
found (text before, between and after blocks is skipped; a block whose end line or base64 is
broken is passed over and the search goes on) decides what lands in the Secret. ``decode``
follows that function step by step; ``encode`` is ``pem.EncodeToMemory`` without headers
(64-character lines, a final newline).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

_BEGIN = b"-----BEGIN "
_END = b"\n-----END "
_DASHES = b"-----"
_LINE = 64


@dataclass(frozen=True, slots=True)
class PemBlock:
    type: str
    der: bytes = field(repr=False)
    has_headers: bool = False


def _get_line(data: bytes) -> tuple[bytes, bytes]:
    """Go's getLine: the first line without its end and trailing spaces/tabs, and the rest."""
    index = data.find(b"\n")
    if index < 0:
        line, rest = data, b""
    else:
        line, rest = data[:index], data[index + 1 :]
        if line.endswith(b"\r"):
            line = line[:-1]
    return line.rstrip(b" \t"), rest


def _after_begin(rest: bytes) -> bytes | None:
    if rest.startswith(_BEGIN):
        return rest[len(_BEGIN) :]
    index = rest.find(b"\n" + _BEGIN)
    return None if index < 0 else rest[index + 1 + len(_BEGIN) :]


def decode_one(data: bytes) -> tuple[PemBlock | None, bytes]:
    """``pem.Decode``: the first well-formed block and what follows it, or (None, data)."""
    rest = data
    while True:
        after = _after_begin(rest)
        if after is None:
            return None, data
        type_line, rest = _get_line(after)
        if not type_line.endswith(_DASHES):
            continue
        block_type = type_line[: -len(_DASHES)]
        headers, rest, complete = _skip_headers(rest)
        if not complete:
            return None, data
        if not headers and rest.startswith(_END[1:]):
            end_index, trailer_index = 0, len(_END) - 1
        else:
            end_index = rest.find(_END)
            trailer_index = end_index + len(_END)
        if end_index < 0:
            continue
        trailer = rest[trailer_index:]
        trailer_len = len(block_type) + len(_DASHES)
        if len(trailer) < trailer_len:
            continue
        end_line, after_end = trailer[:trailer_len], trailer[trailer_len:]
        if not end_line.startswith(block_type) or not end_line.endswith(_DASHES):
            continue
        if _get_line(after_end)[0]:
            continue  # the END line must end with nothing but whitespace
        body = bytes(b for b in rest[:end_index] if b not in b" \t\r\n")
        try:
            der = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            continue
        _, rest = _get_line(rest[end_index + len(_END) - 1 :])
        return PemBlock(block_type.decode("latin-1"), der, headers), rest


def _skip_headers(rest: bytes) -> tuple[bool, bytes, bool]:
    """Go reads ``Key: value`` lines up to the first line without a colon. Returns (any
    header seen, rest, whether data remained: Go gives up on the whole input when not)."""
    seen = False
    while True:
        if not rest:
            return seen, rest, False
        line, after = _get_line(rest)
        if b":" not in line:
            return seen, rest, True
        seen = True
        rest = after


def decode_all(data: bytes) -> tuple[list[PemBlock], bytes]:
    """Every block, as upstream's loops read them, and what is left after the last one."""
    blocks: list[PemBlock] = []
    while True:
        block, rest = decode_one(data)
        if block is None:
            return blocks, data
        blocks.append(block)
        data = rest


def encode(block_type: str, der: bytes) -> bytes:
    text = base64.b64encode(der)
    lines = b"".join(text[i : i + _LINE] + b"\n" for i in range(0, len(text), _LINE))
    head = f"-----BEGIN {block_type}-----\n".encode()
    return head + lines + f"-----END {block_type}-----\n".encode()
