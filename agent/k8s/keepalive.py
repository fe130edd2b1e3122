"""TCP keepalive on the API connection that carries a watch: how a quiet watch finds out that
its peer is gone.

A healthy watch may be silent for its whole ``timeoutSeconds`` (see ``InformerSettings``), so
silence alone cannot tell a dead connection; the kernel can. With keepalive on, after ``idle``
seconds without traffic it sends a probe every ``interval`` seconds, and after ``count``
unanswered probes it fails the socket (ETIMEDOUT), which ends the watch's read at once: a peer
that vanished without a FIN (a node powered off, a partition, a load balancer or NAT that
dropped the flow) is found within ``idle + interval * count`` seconds. The probes also keep the
flow alive in middleboxes that drop idle ones (cloud load balancers after 4 to 10 minutes).

A server process that hangs while its kernel still answers, or a proxy that keeps the
connection but stopped forwarding, is not found this way: the liveness check of a quiet watch
(``agent.k8s.watch_liveness``) finds those, and the watch's read timeout (its
``timeoutSeconds`` plus a margin) bounds them when that check is off. A watch keepalive ends
fails with ``ApiConnectionLost`` (``how="keepalive"``), logged as such.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

import structlog

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class KeepAlive:
    """Whole seconds, as the socket options take them. The defaults find a dead peer within
    60 s, about what client-go's HTTP/2 health check does (a ping after 30 s without a frame,
    15 s for its answer); client-go's HTTP/1.1 connections rely on Go's keepalive (30 s idle,
    30 s apart, the system's 9 probes: 5 minutes)."""

    idle: int = 30
    interval: int = 10
    count: int = 3

    @property
    def detects_within(self) -> int:
        """Seconds of silence after which a dead peer has been found."""
        return self.idle + self.interval * self.count


def enable(sock: Any, keepalive: KeepAlive) -> bool:
    """Turn keepalive on for ``sock`` (a socket, or asyncio's wrapper of one); False when the
    platform refuses it (logged: the watch's read timeout still bounds a dead connection)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in (
            ("TCP_KEEPIDLE", keepalive.idle),
            ("TCP_KEEPINTVL", keepalive.interval),
            ("TCP_KEEPCNT", keepalive.count),
        ):
            option = getattr(socket, name, None)
            if option is not None:  # every one on Linux; macOS names the first TCP_KEEPALIVE
                sock.setsockopt(socket.IPPROTO_TCP, option, value)
    except OSError as err:
        log.warning("k8s.keepalive_unavailable", error=err.strerror or str(err))
        return False
    return True
