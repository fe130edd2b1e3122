"""A plain HTTP reverse proxy on a loopback port, in front of a real server (OpenBao, moto) whose
traffic a test wants to see or hold (give it a :class:`~tests.support.wiretap.Wiretap`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

_HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


async def forward(
    session: aiohttp.ClientSession, upstream: str, request: web.Request
) -> web.Response:
    """``request`` sent on to ``upstream`` (a base URL) and its answer, hop-by-hop headers
    dropped both ways."""
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
    async with session.request(
        request.method,
        upstream + request.path_qs,
        headers=headers,
        data=await request.read(),
    ) as reply:
        body = await reply.read()
        kept = {k: v for k, v in reply.headers.items() if k.lower() not in _HOP_BY_HOP}
        return web.Response(status=reply.status, body=body, headers=kept)


@dataclass
class HttpRelay:
    upstream: str
    middlewares: list[Any] = field(default_factory=list)
    address: str = ""
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        app = web.Application(middlewares=self.middlewares)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.address = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        self._session = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        assert self._session is not None
        return await forward(self._session, self.upstream, request)
