"""A unary gRPC call written frame by frame over HTTP/2 (h2), for requests no gRPC library
sends: a length prefix that declares more than comes, a compressed flag without compression, a
stream that ends before its message. Async, so the agent under test may share the loop."""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass
from urllib.parse import unquote

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import ResponseReceived, StreamReset, TrailersReceived


@dataclass(frozen=True, slots=True)
class CallStatus:
    code: int  # grpc-status
    message: str  # grpc-message, percent-decoded


def prefix(length: int, flag: int = 0) -> bytes:
    """A gRPC message's 5-byte prefix: the compressed flag, then the length it declares."""
    return struct.pack(">BI", flag, length)


async def call(socket_path: str, method: str, body: bytes | None) -> CallStatus:
    """POST ``body`` (None: no DATA frame, the stream ends with its headers) to ``method``
    (``/csi.v1.Node/NodePublishVolume``) and return the call's status."""
    reader, writer = await asyncio.open_unix_connection(socket_path)
    connection = H2Connection(H2Configuration(client_side=True, header_encoding="utf-8"))
    connection.initiate_connection()
    stream = connection.get_next_available_stream_id()
    headers = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", method),
        (":authority", "localhost"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]
    connection.send_headers(stream, headers, end_stream=body is None)
    if body is not None:
        connection.send_data(stream, body, end_stream=True)
    writer.write(connection.data_to_send())
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                raise AssertionError("the connection closed before the call's status came")
            for event in connection.receive_data(data):
                if isinstance(event, StreamReset):
                    raise AssertionError(f"stream reset (error code {event.error_code})")
                if isinstance(event, ResponseReceived | TrailersReceived):
                    fields = {str(k): str(v) for k, v in event.headers or ()}
                    if "grpc-status" in fields:
                        message = unquote(fields.get("grpc-message", ""))
                        return CallStatus(int(fields["grpc-status"]), message)
            writer.write(connection.data_to_send())
    finally:
        writer.close()
        await writer.wait_closed()
