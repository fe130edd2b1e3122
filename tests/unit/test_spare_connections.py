"""``PreparedProtocol`` builds at construction what grpclib's ``H2Protocol`` builds on
``connection_made``: a connecting client must get the very same bytes (SETTINGS, the
connection's WINDOW_UPDATE), whatever grpclib version the range in pyproject.toml installs."""

from __future__ import annotations

import asyncio
from typing import Any

from grpclib.protocol import H2Protocol
from grpclib.server import Server

from agent.csi.codec import RequestCodec
from agent.csi.spare_connections import PreparedProtocol, SpareConnections


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = b""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default  # no socket: a unix socket gets no TCP_NODELAY either

    def is_closing(self) -> bool:
        return False


def _first_bytes(protocol: H2Protocol) -> bytes:
    transport = _Transport()
    protocol.connection_made(transport)
    return transport.written


async def test_a_prepared_connection_sends_what_grpclibs_own_sends() -> None:
    server = Server([], codec=RequestCodec())
    stock = server._protocol_factory()
    prepared = PreparedProtocol(stock.handler, stock.config, stock.h2_config)
    expected = _first_bytes(server._protocol_factory())
    assert expected  # SETTINGS at least
    assert _first_bytes(prepared) == expected


async def test_take_builds_inline_when_none_is_ready_and_refills_only_once_started() -> None:
    server = Server([], codec=RequestCodec())

    def build() -> PreparedProtocol:
        stock = server._protocol_factory()
        return PreparedProtocol(stock.handler, stock.config, stock.h2_config)

    spares = SpareConnections(build)
    assert isinstance(spares.take(), PreparedProtocol)  # not started: built on the spot
    assert not spares.refill_pending
    spares.start()
    taken = spares.take()
    assert spares.ready == 3 and spares.refill_pending
    assert isinstance(taken, PreparedProtocol)
    spares.close()
    assert spares.ready == 0 and not spares.refill_pending
