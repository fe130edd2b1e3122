"""Reading an HTTP answer whole, up to a limit, from any byte stream (aiohttp's included).

aiohttp's ``StreamReader.read(n)`` returns what is buffered, at most ``n`` bytes, not ``n``
bytes: one call can stop at a TCP segment or a TLS record, and a single ``read(limit + 1)``
then hands back the start of a large answer as if it were all of it. :func:`read_capped` keeps
reading until the end of the stream and stops as soon as the limit is passed, so a hostile or
misdirected endpoint cannot make the agent buffer more than ``limit`` bytes.
"""

from __future__ import annotations

from typing import Protocol


class ByteStream(Protocol):
    async def read(self, n: int = -1) -> bytes:
        """At most ``n`` bytes; ``b""`` at the end of the stream."""
        ...


class BodyTooLarge(ValueError):
    """The answer is longer than the caller accepts; its message gives the limit only."""


async def read_capped(stream: ByteStream, limit: int) -> bytes:
    """The whole stream; BodyTooLarge once more than ``limit`` bytes have arrived."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await stream.read(limit + 1 - size)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"answer larger than {limit} bytes")
        chunks.append(chunk)
