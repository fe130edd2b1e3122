"""The shared HTTP helpers: whole bodies under a cap, and Retry-After values."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import StreamReader
from aiohttp.base_protocol import BaseProtocol

from agent.providers.common.http import BodyTooLarge, parse_retry_after, read_capped


def stream() -> StreamReader:
    """aiohttp's own body reader, as a response hands it out; the test feeds it."""
    loop = asyncio.get_running_loop()
    protocol = BaseProtocol(loop)
    protocol.connection_made(asyncio.Transport())  # connected; never asked to pause here
    return StreamReader(protocol, 2**16, loop=loop)


async def test_a_body_arriving_in_pieces_is_read_to_the_end() -> None:
    body = stream()
    body.feed_data(b'{"value": "first half, ')

    def rest() -> None:
        body.feed_data(b'second half"}')
        body.feed_eof()

    asyncio.get_running_loop().call_soon(rest)
    assert await read_capped(body, 1000) == b'{"value": "first half, second half"}'


async def test_a_body_over_the_cap_is_refused_without_reading_the_rest() -> None:
    body = stream()
    body.feed_data(b"x" * 600)
    body.feed_data(b"y" * 600)  # no EOF: the reader must stop by itself
    with pytest.raises(BodyTooLarge, match="larger than 1000 bytes"):
        await read_capped(body, 1000)


async def test_an_empty_body() -> None:
    body = stream()
    body.feed_eof()
    assert await read_capped(body, 10) == b""


def test_retry_after_forms() -> None:
    assert parse_retry_after("7", 0) == 7.0
    assert parse_retry_after(" 7 ", 0) == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470.0) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412490.0) == 0.0  # past
    for unusable in ("", "soon", "-3", "1.5", "\u0663"):  # "٣" is a digit, not an ASCII one
        assert parse_retry_after(unusable, 0) is None
