"""The gRPC channel to a plugin's unix socket, as upstream's client dials it.

``:authority`` is ``localhost`` (upstream forces it; its e2e provider rejects any other), the
socket is connected through the platform's sockets (Windows too), and replies above
``--max-call-recv-msg-size`` are refused with grpc-go's status and wording.
agent/providers/plugin.py makes the calls over it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from grpclib.client import Channel
from grpclib.const import Status
from grpclib.encoding.proto import ProtoCodec
from grpclib.exceptions import GRPCError
from grpclib.protocol import H2Protocol

from agent.platform.afunix import UnixSockets


class LocalhostChannel(Channel):
    """A channel to a plugin's unix socket, connected through the platform's sockets.

    grpclib dials a ``path`` with ``loop.create_unix_connection``, which no Windows event loop
    has; a socket connected by ``agent.platform.afunix`` and handed to
    ``loop.create_connection(sock=...)`` works on both (overrides grpclib's private
    ``_create_connection``, pinned with grpclib 0.4).
    """

    def __init__(self, socket_path: str, sockets: UnixSockets, codec: ProtoCodec) -> None:
        super().__init__(path=socket_path, codec=codec)
        self._socket_path = socket_path
        self._sockets = sockets

    # grpclib derives ":authority" from host:port even for a unix socket ("127.0.0.1:50051");
    # upstream forces "localhost" and its e2e provider rejects any other value.
    def _get_authority(self, host: str, port: int) -> str:
        return "localhost"

    async def _create_connection(self) -> H2Protocol:
        sock = await self._sockets.connect(self._socket_path)
        try:
            _, protocol = await asyncio.get_running_loop().create_connection(
                self._protocol_factory, sock=sock
            )
        except BaseException:
            sock.close()
            raise
        return protocol


class LimitedCodec(ProtoCodec):
    """Refuses replies above ``--max-call-recv-msg-size`` with grpc-go's status and wording.

    grpclib has no receive limit and reads the length-prefixed message before any hook runs,
    so the reply is buffered before this check; what the limit buys here is upstream's
    behaviour (an oversized volume fails instead of being written). The plugin is a local
    DaemonSet behind filesystem ACLs, not an untrusted peer.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    def decode(self, data: bytes, message_type: Any) -> Any:
        if len(data) > self.max_bytes:
            raise GRPCError(
                Status.RESOURCE_EXHAUSTED,
                f"grpc: received message larger than max ({len(data)} vs. {self.max_bytes}); "
                "--max-call-recv-msg-size raises the limit",
            )
        return super().decode(data, message_type)
