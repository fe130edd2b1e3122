"""HTTP pieces every provider's aiohttp client needs, without importing aiohttp.

Usage::

    body = await read_capped(response.content, MAX_BYTES)   # BodyTooLarge past the cap
    delay = parse_retry_after(headers.get("retry-after", ""), time.time())  # seconds or None

``read_capped`` exists because aiohttp's ``StreamReader.read(n)`` returns as soon as *some*
bytes are buffered, not ``n`` of them: an answer that arrives in several TCP segments or TLS
records (a slow link, a large certificate chain) would be cut short and parsed as truncated
JSON. It reads to the end of the body and stops early only when the cap is passed.
"""

from __future__ import annotations

import email.utils
from typing import Protocol


class ByteStream(Protocol):
    """What ``read_capped`` needs of a body: aiohttp's ``StreamReader.readany`` (b"" at EOF)."""

    async def readany(self) -> bytes: ...


class BodyTooLarge(ValueError):
    """The body exceeded the cap; the message gives the cap, never the body."""


async def read_capped(stream: ByteStream, limit: int) -> bytes:
    """The whole body of ``stream``; raises BodyTooLarge as soon as more than ``limit`` bytes
    have arrived (the rest is not read)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await stream.readany():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"the answer is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_retry_after(value: str, now: float) -> float | None:
    """A ``Retry-After`` value (RFC 9110 §10.2.3: delay-seconds or an HTTP-date) as seconds
    from ``now`` (Unix seconds), never negative; None when absent or unreadable."""
    value = value.strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)
