"""Server-side HTTP/2 connections built before the clients that will use them connect.

Kubelet dials the CSI socket anew for every call and closes the connection after it
(``pkg/volume/csi/csi_client.go``: ``newGrpcConn`` per call; its NodePublishVolume makes two,
NodeGetCapabilities then the publish), and grpc-go sends a request only once the server's
SETTINGS have arrived. So the time from ``accept`` to the agent's SETTINGS is part of every
call kubelet makes. grpclib builds a connection's HTTP/2 state (h2's ``H2Connection``: settings,
HPACK tables, state machine) in ``connection_made``; after the idle between two pod starts that
Python runs cold, 0.25-0.55 ms on the standard VM. :class:`SpareConnections` keeps a few built
while the loop is idle, so accepting a connection only attaches its transport and writes the
SETTINGS already encoded (docs/benchmarks.md, "A connection per call").
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

from grpclib.config import Configuration
from grpclib.protocol import AbstractHandler, Connection, EventsProcessor, H2Protocol
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.settings import SettingCodes

# Kubelet's mount of one volume dials up to four times within milliseconds (capability checks
# for staging, fsGroup and access modes, then the publish); a burst beyond that builds inline.
SPARES = 4
# After the first spare taken from a full pool: far enough behind the call that took it not to
# delay its request; the spares taken meanwhile are rebuilt by the same refill.
REFILL_AFTER_S = 0.05


def server_connection(config: Configuration, h2_config: H2Configuration) -> H2Connection:
    """A server's HTTP/2 state before any byte arrives: its SETTINGS queued, flow-control windows
    set from grpclib's ``config`` as grpclib's own ``H2Protocol.connection_made`` sets them."""
    connection = H2Connection(config=h2_config)
    connection.initiate_connection()
    initial = connection.local_settings.initial_window_size
    if config.http2_connection_window_size != initial:
        connection.increment_flow_control_window(config.http2_connection_window_size - initial)
    if config.http2_stream_window_size != initial:
        setting: dict[SettingCodes | int, int] = {
            SettingCodes.INITIAL_WINDOW_SIZE: config.http2_stream_window_size
        }
        connection.update_settings(setting)
    return connection


class PreparedProtocol(H2Protocol):
    """grpclib's server protocol with its HTTP/2 state built at construction instead of on
    ``connection_made``. For unix sockets only: TCP_NODELAY, which grpclib sets on TCP, is not
    set."""

    def __init__(
        self, handler: AbstractHandler, config: Configuration, h2_config: H2Configuration
    ) -> None:
        super().__init__(handler, config, h2_config)
        self._prepared = server_connection(config, h2_config)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.connection = Connection(
            self._prepared, cast(asyncio.Transport, transport), config=self.config
        )
        self.connection.flush()
        self.connection.initialize()
        self.processor = EventsProcessor(self.handler, self.connection)


class SpareConnections:
    """Up to :data:`SPARES` protocols from ``build``, refilled :data:`REFILL_AFTER_S` after the
    first one taken since the last refill. :meth:`take` never blocks: with none left it builds
    one (as grpclib would)."""

    def __init__(self, build: Callable[[], PreparedProtocol]) -> None:
        self._build = build
        self._spares: list[PreparedProtocol] = []
        self._refill: asyncio.TimerHandle | None = None
        self._open = False

    @property
    def ready(self) -> int:
        """How many are built and waiting for a client."""
        return len(self._spares)

    @property
    def refill_pending(self) -> bool:
        return self._refill is not None

    def start(self) -> None:
        """Fill the pool now (the server is about to accept) and refill from then on."""
        self._open = True
        self._fill()

    def take(self) -> PreparedProtocol:
        if not self._spares:
            return self._build()
        protocol = self._spares.pop()
        if self._open and self._refill is None:
            self._refill = asyncio.get_running_loop().call_later(REFILL_AFTER_S, self._fill)
        return protocol

    def close(self) -> None:
        """No more refills; the spares are dropped (no client ever saw them)."""
        self._open = False
        if self._refill is not None:
            self._refill.cancel()
            self._refill = None
        self._spares.clear()

    def _fill(self) -> None:
        self._refill = None
        while self._open and len(self._spares) < SPARES:
            self._spares.append(self._build())
