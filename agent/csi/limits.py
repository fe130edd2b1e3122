"""The request messages the CSI server takes: their size and framing, as upstream's grpc-go server.

Upstream's driver runs grpc-go with default server options: a request message longer than 4 MiB
(``defaultServerMaxReceiveMessageSize``, 4194304 bytes) is answered RESOURCE_EXHAUSTED
"grpc: received message larger than max (N vs. 4194304)" and never decoded. grpclib has no
such option (vmagamedov/grpclib#195): it reads the 5-byte gRPC prefix, then buffers as many
bytes as the prefix declares before decoding them, so an arbitrary caller on the socket could
make the agent hold any amount of memory for one call.

The limit is applied where grpclib reads a stream's body: every request stream gets a
:class:`_RequestBuffer`, which refuses a read longer than the limit before waiting for any of
it. grpclib only ever reads a 5-byte prefix and then exactly the message length it declares,
so the one read that can pass the limit is the body of a message over it. What the caller sent
until then is held only up to the HTTP/2 flow-control window (grpclib's 4 MiB per stream);
the stream's release acknowledges it, so the connection keeps serving other calls.

The same buffer answers a request whose framing is broken, which grpclib lets escape as an
application error (UNKNOWN "Internal Server Error" to the caller, a traceback in the log): a
stream that ends inside a prefix or a message, or before any message (every CSI call is
unary), is INTERNAL (what grpc-go's client makes of an unexpected EOF); a compressed message
is UNIMPLEMENTED (the agent takes none, as grpc-go's server without a decompressor), and a
prefix flag other than 0 or 1 is INTERNAL, as in grpc-go.
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
_COMPRESSED = 1  # the first byte of a message's 5-byte prefix; its length follows

_Headers = list[tuple[str, str]]


class _RequestBuffer(Buffer):
    """A request stream's receive buffer that refuses a message over ``limit`` bytes, unread,
    and a message whose framing is broken (GRPCError, logged as a warning)."""

    def __init__(self, ack: Callable[[int], None], limit: int, method: str) -> None:
        super().__init__(ack)
        self._limit = limit
        self._method = method
        self._at_prefix = True  # grpclib reads a prefix, then the body it declares, in turn
        self._messages = 0

    async def read(self, size: int) -> bytes:
        if size > self._limit:
            log.warning("csi.request_too_large", method=self._method, bytes=size, limit=self._limit)
            raise GRPCError(
                Status.RESOURCE_EXHAUSTED,
                f"grpc: received message larger than max ({size} vs. {self._limit})",
            )
        try:
            data = await super().read(size)
        except AssertionError:  # grpclib's Buffer: the stream ended before ``size`` bytes came
            part = "prefix" if self._at_prefix else "body"
            raise self._malformed(
                Status.INTERNAL,
                f"grpc: the request ended inside a message's {part} (unexpected EOF)",
            ) from None
        at_prefix, self._at_prefix = self._at_prefix, not self._at_prefix
        if at_prefix:
            self._check_prefix(data)
        return data

    def _check_prefix(self, prefix: bytes) -> None:
        if not prefix:  # the stream ended where a message could start
            if self._messages == 0:
                raise self._malformed(Status.INTERNAL, "grpc: the request has no message")
            return
        self._messages += 1
        flag = prefix[0]
        if flag == _COMPRESSED:
            raise self._malformed(
                Status.UNIMPLEMENTED, "grpc: compressed request messages are not accepted"
            )
        if flag != 0:
            raise self._malformed(
                Status.INTERNAL, f"grpc: received unexpected payload format {flag}"
            )

    def _malformed(self, status: Status, message: str) -> GRPCError:
        log.warning("csi.request_malformed", method=self._method, reason=message)
        return GRPCError(status, message)


class RequestMessageChecks(AbstractHandler):
    """Wraps a grpclib server connection's handler (``H2Protocol.handler``): each request
    stream it accepts reads through a :class:`_RequestBuffer` of ``limit`` bytes."""

    def __init__(self, handler: AbstractHandler, limit: int = MAX_RECV_MESSAGE_BYTES) -> None:
        self._handler = handler
        self._limit = limit

    def accept(self, stream: Stream, headers: _Headers, release_stream: Callable[[], None]) -> None:
        # Called as the request's HEADERS frame is processed, before any DATA frame of the
        # stream: the buffer grpclib created is still empty, nothing is lost by replacing it.
        assert stream.id is not None
        method = dict(headers).get(":path", "")
        ack = partial(stream.connection.ack, stream.id)
        stream.buffer = _RequestBuffer(ack, self._limit, method)
        self._handler.accept(stream, headers, release_stream)

    def cancel(self, stream: Stream) -> None:
        self._handler.cancel(stream)

    def close(self) -> None:
        self._handler.close()
