"""A fake upstream provider plugin, modelled on upstream's ``test/e2eprovider``.

Served by grpcio (grpc-core, the same HTTP/2 stack family as the Go plugins) on a unix socket,
so the agent's grpclib client is tested against a foreign implementation. grpcio does not show
a handler the ``:authority`` pseudo-header, so the public socket is a small relay that decodes
the client's HTTP/2 HEADERS frames (hpack) before passing the bytes on to grpcio's socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

import betterproto2
import grpc
import hpack
import yaml

from agent._proto import v1alpha1 as pb
from tests.support.wiretap import Gate

SERVICE = "v1alpha1.CSIDriverProvider"
_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_HEADERS, _CONTINUATION = 0x1, 0x9
_END_HEADERS, _PADDED, _PRIORITY = 0x4, 0x8, 0x20


@dataclass(frozen=True)
class ReceivedMount:
    """A Mount request exactly as it arrived (the JSON fields as raw text)."""

    attributes: str
    secrets: str
    permission: str
    target_path: str
    current_versions: tuple[tuple[str, str], ...]


class _HeaderSniffer:
    """Follows the client→server byte stream and records each request's ``:authority``."""

    def __init__(self, found: list[str]) -> None:
        self._found = found
        self._buffer = b""
        self._preface_seen = False
        self._block = b""
        self._decoder = hpack.Decoder()

    def feed(self, data: bytes) -> None:
        self._buffer += data
        if not self._preface_seen:
            if len(self._buffer) < len(_PREFACE):
                return
            self._buffer = self._buffer[len(_PREFACE) :]
            self._preface_seen = True
        while len(self._buffer) >= 9:
            length = int.from_bytes(self._buffer[:3], "big")
            if len(self._buffer) < 9 + length:
                return
            kind, flags = self._buffer[3], self._buffer[4]
            payload = self._buffer[9 : 9 + length]
            self._buffer = self._buffer[9 + length :]
            if kind in (_HEADERS, _CONTINUATION):
                self._header_frame(kind, flags, payload)

    def _header_frame(self, kind: int, flags: int, payload: bytes) -> None:
        if kind == _HEADERS:
            pad = payload[0] if flags & _PADDED else 0
            start = (1 if flags & _PADDED else 0) + (5 if flags & _PRIORITY else 0)
            payload = payload[start : len(payload) - pad]
        self._block += payload
        if flags & _END_HEADERS:
            headers = dict(self._decoder.decode(self._block, raw=True))
            self._block = b""
            if b":authority" in headers:
                self._found.append(headers[b":authority"].decode())


class FakePlugin:
    """Answers Mount like upstream's e2e provider; knobs make it misbehave on purpose.

    ``relay=False`` serves grpcio on ``socket_path`` itself, without the ``:authority`` relay
    (``authorities`` then stays empty): what a benchmark wants, one hop like a real plugin.
    """

    def __init__(self, socket_path: str, *, relay: bool = True) -> None:
        self.socket_path = socket_path
        self.relay = relay
        self.requests: list[ReceivedMount] = []
        self.authorities: list[str] = []
        self.version_calls = 0
        self.error_code = ""  # answer with MountResponse.error.code
        self.omit_versions = False  # answer without object versions
        self.omit_files = False  # legacy plugin: versions only
        self.unavailable_calls = 0  # fail this many Mount calls with UNAVAILABLE first
        self.delay = 0.0  # seconds to sleep in Mount
        self.gate = Gate()  # closed: Mount calls wait (after being recorded) until it opens
        self.padding = 0  # bytes of an extra file, for oversized replies
        self.modes: dict[str, int] = {}  # objectName -> mode, instead of the permission
        # As upstream's e2e provider after ``GET /rotation?rotated=true``: each object's content
        # becomes ``<name>:rotated`` and its version ``v2``.
        self.rotated = False
        self._backend_dir = ""
        self._server: grpc.aio.Server | None = None
        self._relay: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._backend_dir = tempfile.mkdtemp(prefix="plugin-", dir="/tmp")
        backend = os.path.join(self._backend_dir, "grpc.sock")
        self._server = grpc.aio.server()
        self._server.add_generic_rpc_handlers((self._handlers(),))
        self._server.add_insecure_port(f"unix://{backend if self.relay else self.socket_path}")
        await self._server.start()
        if not self.relay:
            return
        self._relay = await asyncio.start_unix_server(
            lambda r, w: self._track(self._forward(r, w, backend)), path=self.socket_path
        )

    async def stop(self) -> None:
        if self._relay is not None:
            self._relay.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await self._relay.wait_closed()
            self._relay = None
        if self._server is not None:
            await self._server.stop(None)
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        shutil.rmtree(self._backend_dir, ignore_errors=True)

    def _handlers(self) -> grpc.GenericRpcHandler:
        def handler(
            method: Any, request: type[betterproto2.Message]
        ) -> grpc.RpcMethodHandler[betterproto2.Message, betterproto2.Message]:
            return grpc.unary_unary_rpc_method_handler(
                method, request_deserializer=request.parse, response_serializer=bytes
            )

        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Mount": handler(self._mount, pb.MountRequest),
                "Version": handler(self._version, pb.VersionRequest),
            },
        )

    async def _version(self, request: pb.VersionRequest, context: Any) -> pb.VersionResponse:
        self.version_calls += 1
        return pb.VersionResponse(
            version="v1alpha1", runtime_name="E2EMockProvider", runtime_version="v0.0.10"
        )

    async def _mount(self, request: pb.MountRequest, context: Any) -> pb.MountResponse:
        self.requests.append(
            ReceivedMount(
                attributes=request.attributes,
                secrets=request.secrets,
                permission=request.permission,
                target_path=request.target_path,
                current_versions=tuple((v.id, v.version) for v in request.current_object_version),
            )
        )
        # Like upstream's e2e provider: only ":authority: localhost" is accepted.
        if any(authority != "localhost" for authority in self.authorities):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "unexpected :authority")
        if self.unavailable_calls > 0:
            self.unavailable_calls -= 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "plugin warming up")
        if self.delay:
            await asyncio.sleep(self.delay)
        await self.gate.passage()
        if self.error_code:
            return pb.MountResponse(error=pb.Error(code=self.error_code))
        return self._answer(request)

    def _answer(self, request: pb.MountRequest) -> pb.MountResponse:
        attributes = json.loads(request.attributes)
        mode = int(json.loads(request.permission))
        files, versions = [], []
        for item in yaml.safe_load(attributes.get("objects", "")).get("array", []):
            spec = yaml.safe_load(item)
            name, version = spec["objectName"], str(spec.get("objectVersion") or "v1")
            contents = f"{name}:{version}".encode()
            if self.rotated:
                version, contents = "v2", f"{name}:rotated".encode()
            files.append(pb.File(path=name, mode=self.modes.get(name, mode), contents=contents))
            versions.append(pb.ObjectVersion(id=f"secret/{name}", version=version))
        if self.padding:
            files.append(pb.File(path="padding", mode=mode, contents=b"x" * self.padding))
        return pb.MountResponse(
            object_version=[] if self.omit_versions else versions,
            files=[] if self.omit_files else files,
        )

    def _track(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _forward(
        self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter, backend: str
    ) -> None:
        server_r, server_w = await asyncio.open_unix_connection(backend)
        sniffer = _HeaderSniffer(self.authorities)
        try:
            await asyncio.gather(
                _pump(client_r, server_w, sniffer.feed), _pump(server_r, client_w, None)
            )
        finally:
            for writer in (client_w, server_w):
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, watch: Any) -> None:
    try:
        while data := await reader.read(65536):
            if watch is not None:
                watch(data)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        # Half-close is not worth modelling: either side ending ends the connection.
        with contextlib.suppress(Exception):
            writer.close()
