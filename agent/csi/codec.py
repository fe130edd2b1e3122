"""The CSI server's message codec: grpclib's protobuf codec, with a request that does not decode
answered as the caller's error.

grpclib decodes a request inside the handler, before the servicer runs; a decoding failure
(truncated message, a string field that is not UTF-8, a wrong wire type) escaped as an
application error: kubelet saw ``UNKNOWN: Internal Server Error`` and the log a traceback.
"""

from __future__ import annotations

from typing import Any

from grpclib.const import Status
from grpclib.encoding.proto import ProtoCodec
from grpclib.exceptions import GRPCError


class RequestCodec(ProtoCodec):
    def decode(self, data: bytes, message_type: Any) -> Any:
        """The message, or GRPCError INVALID_ARGUMENT naming its type (never the bytes, which
        may hold node-publish secrets or tokens)."""
        try:
            return super().decode(data, message_type)
        except Exception:
            raise GRPCError(
                Status.INVALID_ARGUMENT,
                f"request is not a valid {message_type.__name__} (protobuf decoding failed)",
            ) from None
