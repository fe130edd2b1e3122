"""What a backend received, and a gate that holds its answers: for tests that must show which
credential reached which store, and that one slow store holds up nobody else.

A :class:`Wiretap`'s ``middleware`` goes into a fake's (or a relay's) aiohttp application before
it serves: it records every request (method, path, headers, body) and then passes it through
the tap's :class:`Gate`. A closed gate holds requests until it is opened, and says when one is
waiting, so a test waits on that event instead of on time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Gate:
    """Open by default. ``close()`` makes :meth:`passage` wait until ``open()``."""

    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self._arrived = asyncio.Event()
        self.held = 0  # callers waiting right now
        self.passed = 0  # callers let through, ever

    def close(self) -> None:
        self._open.clear()
        self._arrived.clear()

    def open(self) -> None:
        self._open.set()

    async def passage(self) -> None:
        if not self._open.is_set():
            self.held += 1
            self._arrived.set()
            try:
                await self._open.wait()
            finally:
                self.held -= 1
        self.passed += 1

    async def holding(self) -> None:
        """Returns once a caller waits at the closed gate."""
        await self._arrived.wait()


@dataclass(frozen=True)
class Tapped:
    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes

    def carries(self, text: str) -> bool:
        """True when ``text`` is anywhere in the request: path, a header value or the body."""
        return (
            text in self.path
            or any(text in value for value in self.headers.values())
            or text.encode() in self.body
        )


@dataclass
class Wiretap:
    requests: list[Tapped] = field(default_factory=list)
    gate: Gate = field(default_factory=Gate)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        body = await request.read()  # cached by aiohttp: the handler reads it again
        self.requests.append(Tapped(request.method, request.path_qs, dict(request.headers), body))
        await self.gate.passage()
        return await handler(request)

    def carried(self, text: str) -> bool:
        return any(tapped.carries(text) for tapped in self.requests)
