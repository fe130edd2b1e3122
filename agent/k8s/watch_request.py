"""How a watch is asked for: its query, its client timeouts, and TCP keepalive on the
connection that carries it (``KubeApi.watch`` sends it and reads the answer)."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from agent.k8s.keepalive import KeepAlive, enable


def watch_query(
    resource_version: str, selectors: Mapping[str, str] | None, server_timeout: int
) -> list[tuple[str, str]]:
    """A watch from ``resource_version`` with bookmarks, which the server ends after
    ``server_timeout`` seconds (``timeoutSeconds``)."""
    return [
        *(selectors or {}).items(),
        ("watch", "1"),
        ("allowWatchBookmarks", "true"),
        ("resourceVersion", resource_version),
        ("timeoutSeconds", str(server_timeout)),
    ]


def watch_timeout(
    request_timeout: float, server_timeout: int, read_margin: float
) -> aiohttp.ClientTimeout:
    """Connect within ``request_timeout``; a read may wait ``server_timeout + read_margin``
    seconds: a quiet watch may hear nothing until the server ends it, and keepalive finds a
    peer that is gone long before."""
    return aiohttp.ClientTimeout(
        total=None, sock_connect=request_timeout, sock_read=server_timeout + read_margin
    )


def keep_alive(response: aiohttp.ClientResponse, keepalive: KeepAlive | None) -> None:
    """TCP keepalive on the socket under ``response`` (None: off; nothing without a socket)."""
    connection = response.connection
    transport = connection.transport if connection is not None else None
    sock = transport.get_extra_info("socket") if transport is not None else None
    if keepalive is not None and sock is not None:
        enable(sock, keepalive)
