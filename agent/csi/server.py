"""The grpclib server on the CSI unix socket: stale-socket removal, 0660 mode, graceful stop.

The socket is bound by the platform (``agent.platform.afunix``) and handed to grpclib as
``sock=``: the same server code runs on Linux (standard AF_UNIX) and Windows (the winsock
shim), where no event loop can bind a unix socket by path. On Windows the file's access is
the ACL inherited from its directory; POSIX modes do not apply there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import weakref

import betterproto2
import structlog
from grpclib._typing import IServable
from grpclib.events import RecvRequest, listen
from grpclib.protocol import H2Protocol
from grpclib.server import Server
from h2.connection import H2Connection

from agent._proto.csi import v1 as csi
from agent.aio.inflight import InFlight
from agent.core.publish import PublishVolume
from agent.core.unpublish import UnpublishVolume
from agent.csi.codec import RequestCodec
from agent.csi.limits import RequestMessageChecks
from agent.csi.servicers import ControllerService, IdentityService, NodeService
from agent.csi.spare_connections import PreparedProtocol, SpareConnections
from agent.errors import ConfigError
from agent.platform.afunix import PosixUnixSockets, UnixSockets

log = structlog.get_logger("agent.csi")

SOCKET_MODE = 0o660
# h2 remembers how each closed stream ended, up to 65,536 per connection (h2 issue #1163), to
# answer late frames precisely. Kubelet dials anew for every call, but a client that keeps one
# connection (a CSI test tool; the agent's own provider plugin connections, also grpclib) makes
# every call a stream on it, and that record alone grew the agent's RSS by about 0.3 KiB per
# publish/unpublish cycle until ~33,000 cycles (~10 MiB). A late frame on a stream it no longer
# remembers gets RST_STREAM(STREAM_CLOSED), harmless for unary calls, so a few hundred is plenty.
MAX_CLOSED_STREAMS = 1024


class _ClosingServer(Server):
    """grpclib's Server.close cancels running handlers but leaves idle client connections open
    until the peer hangs up; tracking them lets shutdown close every transport it accepted.
    Each connection's requests are held to upstream's message size and framing
    (``agent.csi.limits``); its HTTP/2 state is built before the client connects
    (``agent.csi.spare_connections``)."""

    def __init__(self, services: list[IServable]) -> None:
        super().__init__(services, codec=RequestCodec())
        self.connections: weakref.WeakSet[H2Protocol] = weakref.WeakSet()
        self.spares = SpareConnections(self._prepare)

    def _protocol_factory(self) -> H2Protocol:
        protocol = self.spares.take()
        self.connections.add(protocol)
        return protocol

    def _prepare(self) -> PreparedProtocol:
        # grpclib's factory registers the connection's handler with the server (closed with
        # it); its protocol object is only that handler and the two configurations.
        stock = super()._protocol_factory()
        return PreparedProtocol(RequestMessageChecks(stock.handler), stock.config, stock.h2_config)

    def close_connections(self) -> None:
        for protocol in list(self.connections):
            connection = getattr(protocol, "connection", None)
            if connection is not None:
                connection.close()


class CsiServer:
    def __init__(
        self,
        services: list[IServable],
        socket_path: str,
        inflight: InFlight,
        trace_requests: bool = False,
        sockets: UnixSockets | None = None,
    ) -> None:
        self._sockets = sockets or PosixUnixSockets()
        H2Connection.MAX_CLOSED_STREAMS = MAX_CLOSED_STREAMS  # read by each new connection
        self._server = _ClosingServer(services)
        self._path = socket_path
        self._inflight = inflight
        self._started = False
        self._bound: tuple[int, int] | None = None
        if trace_requests:
            # Only when asked (-v >= 1): the per-request event costs ~45 µs on every call.
            listen(self._server, RecvRequest, _log_request)

    @classmethod
    def for_node(
        cls,
        *,
        driver_name: str,
        version: str,
        node_id: str,
        publish: PublishVolume,
        unpublish: UnpublishVolume,
        socket_path: str,
        trace_requests: bool = False,
        sockets: UnixSockets | None = None,
    ) -> CsiServer:
        inflight = InFlight()
        services: list[IServable] = [
            IdentityService(driver_name, version, inflight),
            NodeService(node_id, publish, unpublish, inflight),
            ControllerService(),
        ]
        return cls(services, socket_path, inflight, trace_requests, sockets)

    @property
    def path(self) -> str:
        return self._path

    @property
    def spares(self) -> SpareConnections:
        """The connections built ahead of kubelet's next dials (``agent.csi.spare_connections``)."""
        return self._server.spares

    async def start(self) -> None:
        if await self._accepts_connections():
            raise ConfigError(
                f"--endpoint: another process is serving on {self._path}; refusing to take it over"
            )
        self._remove_stale_socket()
        # The umask makes the socket 0660 from the moment it exists; chmod pins it regardless.
        previous = os.umask(0o117)
        try:
            os.makedirs(os.path.dirname(self._path) or ".", exist_ok=True)
            sock = self._sockets.bind(self._path)
            try:
                await self._server.start(sock=sock)
            except BaseException:
                sock.close()
                raise
        except OSError as err:
            raise ConfigError(
                f"--endpoint: cannot listen on {self._path}: {err.strerror or err}"
            ) from None
        finally:
            os.umask(previous)
        self._started = True
        self._bound = _inode(self._path)
        self._server.spares.start()
        _warm_messages()
        if os.name == "posix":
            os.chmod(self._path, SOCKET_MODE)
        log.info("csi.serving", socket=self._path)

    async def accepting(self) -> bool:
        """Serving and not draining: what /readyz reports."""
        return self._started and not self._inflight.draining and await self.serving()

    async def serving(self) -> bool:
        """Our socket (not one a later instance bound at the same path) accepts connections."""
        return _inode(self._path) == self._bound and await self._accepts_connections()

    async def stop(self, grace: float) -> None:
        """Refuse new calls, let running ones finish within ``grace`` seconds, then close."""
        if not self._started:
            return  # never bound (e.g. a refused --endpoint): nothing to close, nothing to unlink
        self._started = False
        self._server.spares.close()
        drained = await self._inflight.drain(grace)
        if not drained:
            log.warning("csi.drain_timeout", in_flight=self._inflight.count, grace_s=grace)
        self._server.close()
        await self._server.wait_closed()
        self._server.close_connections()
        if _inode(self._path) == self._bound:  # never unlink a socket another instance bound
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path)
        log.info("csi.stopped")

    async def _accepts_connections(self) -> bool:
        """What kubelet needs of the socket: a connection, not merely a file."""
        try:
            async with asyncio.timeout(1.0):
                sock = await self._sockets.connect(self._path)
                try:
                    _, writer = await asyncio.open_connection(sock=sock)
                except BaseException:
                    sock.close()
                    raise
        except (OSError, TimeoutError):
            return False
        # A clean close, awaited: the server side sees the end of the connection at once.
        writer.close()
        await writer.wait_closed()
        return True

    def _remove_stale_socket(self) -> None:
        try:
            is_socket = self._sockets.is_socket(self._path)
        except FileNotFoundError:
            return
        if not is_socket:
            raise ConfigError(
                f"--endpoint: {self._path} exists and is not a socket; refusing to remove it"
            )
        os.unlink(self._path)
        log.info("csi.stale_socket_removed", socket=self._path)


def _inode(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


async def _log_request(event: RecvRequest) -> None:
    log.debug("csi.request", method=event.method_name, deadline=_remaining(event))


def _remaining(event: RecvRequest) -> float | None:
    return round(event.deadline.time_remaining(), 3) if event.deadline else None


def _warm_messages() -> None:
    """Encode and decode each Node call's messages once: betterproto2 builds a message class's
    field tables on its first use, which the first publish would otherwise pay (~several ms)."""
    capability = csi.VolumeCapability(
        mount=csi.VolumeCapabilityMountVolume(),
        access_mode=csi.VolumeCapabilityAccessMode(
            mode=csi.VolumeCapabilityAccessModeMode.SINGLE_NODE_READER_ONLY
        ),
    )
    publish = csi.NodePublishVolumeRequest(
        volume_id="v",
        target_path="/t",
        volume_capability=capability,
        readonly=True,
        secrets={"k": "v"},
        volume_context={"k": "v"},
    )
    messages: list[betterproto2.Message] = [
        publish,
        csi.NodePublishVolumeResponse(),
        csi.NodeUnpublishVolumeRequest(volume_id="v", target_path="/t"),
        csi.NodeUnpublishVolumeResponse(),
    ]
    for message in messages:
        type(message).parse(bytes(message))
