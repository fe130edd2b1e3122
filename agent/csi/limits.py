"""The largest request message the CSI server takes, as upstream's grpc-go server.

Upstream's driver runs grpc-go with default server options: a request message longer than 4 MiB
(``defaultServerMaxReceiveMessageSize``, 4194304 bytes) is answered RESOURCE_EXHAUSTED
"grpc: received message larger than max (N vs. 4194304)" and never decoded. grpclib has no
such option (vmagamedov/grpclib#195): it reads the 5-byte gRPC prefix, then buffers as many
bytes as the prefix declares before decoding them, so an arbitrary caller on the socket could
make the agent hold any amount of memory for one call.

The limit is applied where grpclib reads a stream's body: every request stream gets a
:class:`_LimitedBuffer`, which refuses a read longer than the limit before waiting for any of
it. grpclib only ever reads a 5-byte prefix and then exactly the message length it declares,
so the one read that can pass the limit is the body of a message over it. What the caller sent
until then is held only up to the HTTP/2 flow-control window (grpclib's 4 MiB per stream);
the stream's release acknowledges it, so the connection keeps serving other calls.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import structlog
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.protocol import AbstractHandler, Buffer, Stream

log = structlog.get_logger("agent.csi")

MAX_RECV_MESSAGE_BYTES = 4 * 1024 * 1024  # grpc-go's defaultServerMaxReceiveMessageSize

_Headers = list[tuple[str, str]]


class _LimitedBuffer(Buffer):
    """A stream's receive buffer that refuses a message over ``limit`` bytes, unread."""

    def __init__(self, ack: Callable[[int], None], limit: int, method: str) -> None:
        super().__init__(ack)
        self._limit = limit
        self._method = method

    async def read(self, size: int) -> bytes:
        if size > self._limit:
            log.warning("csi.request_too_large", method=self._method, bytes=size, limit=self._limit)
            raise GRPCError(
                Status.RESOURCE_EXHAUSTED,
                f"grpc: received message larger than max ({size} vs. {self._limit})",
            )
        return await super().read(size)


class MessageSizeLimit(AbstractHandler):
    """Wraps a grpclib server connection's handler (``H2Protocol.handler``): each request
    stream it accepts reads through a :class:`_LimitedBuffer` of ``limit`` bytes."""

    def __init__(self, handler: AbstractHandler, limit: int = MAX_RECV_MESSAGE_BYTES) -> None:
        self._handler = handler
        self._limit = limit

    def accept(self, stream: Stream, headers: _Headers, release_stream: Callable[[], None]) -> None:
        # Called as the request's HEADERS frame is processed, before any DATA frame of the
        # stream: the buffer grpclib created is still empty, nothing is lost by replacing it.
        assert stream.id is not None
        method = dict(headers).get(":path", "")
        ack = partial(stream.connection.ack, stream.id)
        stream.buffer = _LimitedBuffer(ack, self._limit, method)
        self._handler.accept(stream, headers, release_stream)

    def cancel(self, stream: Stream) -> None:
        self._handler.cancel(stream)

    def close(self) -> None:
        self._handler.close()
