"""An HTTP proxy in front of moto that makes one AWS region misbehave, over real HTTP.

moto serves every region at one address, telling them apart by the SigV4 credential scope
(``Credential=AKID/<date>/<region>/<service>/aws4_request``). The proxy reads the same scope, so a
fault can hit one region (to drive failover) while the other reaches moto untouched. It also
records which access key signed each request, to show which pod's credentials were used.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Literal

import aiohttp
from aiohttp import web

Fault = Literal["unavailable", "throttle", "drop", "deny", "not-found", "slow", "oversized"]
OVERSIZED_BYTES = 5 * 1024 * 1024  # a well-formed GetSecretValue answer, far above any secret
_SCOPE = re.compile(r"Credential=([^/]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")
_HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


@dataclass(frozen=True)
class Seen:
    region: str
    service: str
    target: str  # X-Amz-Target, e.g. secretsmanager.GetSecretValue
    access_key: str


@dataclass
class FaultProxy:
    upstream: str
    faults: dict[str, Fault] = field(default_factory=dict)  # region -> what goes wrong
    seen: list[Seen] = field(default_factory=list)
    address: str = ""
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None
    _released: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.address = f"http://127.0.0.1:{port}"
        self._session = aiohttp.ClientSession()

    async def stop(self) -> None:
        self._released.set()
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def calls(self, region: str, target: str = "") -> int:
        return sum(1 for s in self.seen if s.region == region and target in s.target)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        match = _SCOPE.search(request.headers.get("Authorization", ""))
        access_key, region, service = match.groups() if match else ("", "", "")
        target = request.headers.get("X-Amz-Target", "")
        self.seen.append(Seen(region, service, target, access_key))
        fault = self.faults.get(region)
        if fault is not None:
            return await self._fault(request, fault)
        return await self._forward(request)

    async def _fault(self, request: web.Request, fault: Fault) -> web.StreamResponse:
        if fault == "drop":
            assert request.transport is not None
            request.transport.close()  # the client sees the connection end without an answer
            return web.Response(status=500)
        if fault == "slow":
            await self._released.wait()  # until the proxy stops: longer than any client timeout
        if fault == "oversized":
            return await _oversized(request)
        status, code, message = {
            "unavailable": (503, "ServiceUnavailable", "Service is unavailable"),
            "throttle": (400, "ThrottlingException", "Rate exceeded"),
            "deny": (400, "AccessDeniedException", "User is not authorized to perform this"),
            "not-found": (
                400,
                "ResourceNotFoundException",
                "Secrets Manager can't find the specified secret.",
            ),
        }[fault]
        body = {"__type": code, "message": message}
        return web.json_response(body, status=status, content_type="application/x-amz-json-1.1")

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=await request.read(),
        ) as reply:
            body = await reply.read()
            kept = {k: v for k, v in reply.headers.items() if k.lower() not in _HOP_BY_HOP}
            return web.Response(status=reply.status, body=body, headers=kept)


async def _oversized(request: web.Request) -> web.StreamResponse:
    """A valid answer, sent in 64 KiB chunks as a large body arrives over a network."""
    response = web.StreamResponse(headers={"Content-Type": "application/x-amz-json-1.1"})
    await response.prepare(request)
    await response.write(b'{"Name": "big", "VersionId": "v1", "SecretString": "')
    chunk = b"x" * 65536
    for _ in range(OVERSIZED_BYTES // len(chunk)):
        try:
            await response.write(chunk)
        except ConnectionError:
            return response  # the client stopped reading: what a size limit does
    await response.write(b'"}')
    await response.write_eof()
    return response
