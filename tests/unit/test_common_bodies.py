"""read_capped: an HTTP answer read whole, however the stream splits it, and never past a limit."""

from __future__ import annotations

import pytest

from agent.providers.common.bodies import BodyTooLarge, read_capped


class Chunked:
    """Hands out at most ``chunk`` bytes per read, as aiohttp does per TCP segment or TLS
    record, and records how much was asked for."""

    def __init__(self, body: bytes, chunk: int) -> None:
        self.body, self.chunk, self.asked = body, chunk, 0

    async def read(self, n: int = -1) -> bytes:
        size = min(self.chunk, len(self.body) if n < 0 else n)
        piece, self.body = self.body[:size], self.body[size:]
        self.asked += len(piece)
        return piece


async def test_a_body_split_into_many_reads_is_read_whole() -> None:
    body = bytes(range(256)) * 1000
    assert await read_capped(Chunked(body, 16 * 1024), limit=len(body)) == body


async def test_an_empty_body() -> None:
    assert await read_capped(Chunked(b"", 10), limit=10) == b""


async def test_one_byte_past_the_limit_is_refused_without_reading_further() -> None:
    stream = Chunked(b"x" * 1000, 7)
    with pytest.raises(BodyTooLarge, match="answer larger than 100 bytes"):
        await read_capped(stream, limit=100)
    assert stream.asked == 101
