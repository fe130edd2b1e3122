"""Answers written a few bytes at a time, as a slow link or a large body reaches a client: in
several TCP segments / TLS records. A client that parses what its first read returned sees
truncated JSON."""

from __future__ import annotations

import asyncio

from aiohttp import web


async def trickled(
    request: web.Request, answer: web.StreamResponse, size: int
) -> web.StreamResponse:
    """``answer`` written ``size`` bytes per write (unchanged when size is 0 or it has no body
    in memory: none, or a payload such as a file)."""
    if not size or not isinstance(answer, web.Response):
        return answer
    if not isinstance(answer.body, bytes | bytearray):
        return answer
    body = bytes(answer.body)
    streamed = web.StreamResponse(status=answer.status, headers=answer.headers)
    streamed.content_length = len(body)
    await streamed.prepare(request)
    for start in range(0, len(body), size):
        await streamed.write(body[start : start + size])
        await asyncio.sleep(0)  # let this segment leave before the next is written
    await streamed.write_eof()
    return streamed
