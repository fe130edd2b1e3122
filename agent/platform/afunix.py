"""Unix domain sockets on Linux and on Windows, behind one small interface.

Kubelet on Windows dials the CSI endpoint over AF_UNIX (Windows 10 1803 / Server 2019 and
later have it: ``afunix.sys``). CPython does not expose ``socket.AF_UNIX`` on Windows
(python/cpython#77589 is open), and no event loop there has ``create_unix_server`` or
``create_unix_connection``. What does work on Windows is a socket object of family 1 (winsock
accepts it; Python's socket methods other than bind/connect do not look at the family) and
``loop.create_server(sock=...)`` / ``loop.create_connection(sock=...)`` of the selector event
loop, whose ``select()`` takes any winsock socket. So only ``bind`` and ``connect`` need the
shim: :class:`WinsockUnixSockets` calls winsock's ``bind``/``connect`` through ctypes with a
``sockaddr_un`` (family, then a 108-byte UTF-8 path, as Go's syscall package builds it for
kubelet). The proactor loop is not used for this: AcceptEx/overlapped I/O on AF_UNIX is not
reliably supported across Windows builds.

Both implementations hand out plain socket objects; the CSI server (grpclib) and the plugin
client build their transports on them with ``sock=``, so Linux runs the same server and
client code as Windows; only the two calls below differ.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import stat
import struct
import sys
from typing import Protocol

AF_UNIX = 1  # the same number on Linux and Windows (afunix.h)
UNIX_PATH_MAX = 108  # sun_path, NUL included (afunix.h and Linux alike)
IO_REPARSE_TAG_AF_UNIX = 0x80000023  # what a bound socket's file is on NTFS


class UnixSockets(Protocol):
    """Creates unix stream sockets; errors are OSError, as the socket module raises them."""

    def bind(self, path: str) -> socket.socket:
        """A stream socket bound at ``path`` (not yet listening; the event loop listens)."""
        ...

    async def connect(self, path: str) -> socket.socket:
        """A non-blocking stream socket connected to ``path``."""
        ...

    def is_socket(self, path: str) -> bool:
        """Whether ``path`` itself (not a link's target) is a socket; FileNotFoundError if
        nothing is there."""
        ...


class PosixUnixSockets:
    """The standard library's AF_UNIX (Linux, macOS)."""

    def bind(self, path: str) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
        except BaseException:
            sock.close()
            raise
        return sock

    async def connect(self, path: str) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, path)
        except BaseException:
            sock.close()
            raise
        return sock

    def is_socket(self, path: str) -> bool:
        return stat.S_ISSOCK(os.lstat(path).st_mode)


def sockaddr_un(path: str) -> bytes:
    """winsock's ``SOCKADDR_UN`` for ``path``: little-endian family 1, the UTF-8 path, NULs.

    Raises OSError(ENAMETOOLONG) when the path does not fit (107 bytes and a NUL), and
    ValueError for a path with a NUL in it.
    """
    if "\0" in path:
        raise ValueError("a unix socket path cannot contain NUL")
    encoded = path.encode("utf-8")
    if len(encoded) >= UNIX_PATH_MAX:
        raise OSError(errno.ENAMETOOLONG, f"unix socket path is {len(encoded)} bytes", path)
    return struct.pack("<H", AF_UNIX) + encoded.ljust(UNIX_PATH_MAX, b"\0")


def is_af_unix_reparse_point(info: os.stat_result) -> bool:
    """Windows: an AF_UNIX socket's file is a reparse point with its own tag (``lstat``)."""
    return getattr(info, "st_reparse_tag", 0) == IO_REPARSE_TAG_AF_UNIX


class WinsockUnixSockets:
    """AF_UNIX on Windows through ws2_32's ``bind`` and ``connect`` (see the module text)."""

    def bind(self, path: str) -> socket.socket:
        sock = socket.socket(AF_UNIX, socket.SOCK_STREAM)
        try:
            _winsock_call("bind", sock, sockaddr_un(path))
        except BaseException:
            sock.close()
            raise
        return sock

    async def connect(self, path: str) -> socket.socket:
        address = sockaddr_un(path)
        sock = socket.socket(AF_UNIX, socket.SOCK_STREAM)
        # A local connect completes or is refused at once; blocking, in a thread, it needs no
        # completion handling of its own. The thread cannot be cancelled: a caller's timeout
        # leaves it running, so the socket is closed only once it is done. Closed earlier, its
        # handle number could be reused by a new socket that the connect would then act on.
        call = asyncio.ensure_future(asyncio.to_thread(_winsock_call, "connect", sock, address))
        try:
            await asyncio.shield(call)
            sock.setblocking(False)
        except BaseException:
            if call.done():
                sock.close()
            else:
                call.add_done_callback(lambda _: sock.close())
            raise
        return sock

    def is_socket(self, path: str) -> bool:
        return is_af_unix_reparse_point(os.lstat(path))


def _winsock_call(name: str, sock: socket.socket, address: bytes) -> None:
    """``bind``/``connect`` of ws2_32 on ``sock``; OSError carrying WSAGetLastError."""
    if sys.platform != "win32":
        raise OSError(errno.EAFNOSUPPORT, "winsock AF_UNIX is only available on Windows")
    import ctypes

    ws2 = ctypes.WinDLL("ws2_32")
    function = getattr(ws2, name)
    function.argtypes = (ctypes.c_size_t, ctypes.c_char_p, ctypes.c_int)
    function.restype = ctypes.c_int
    if function(sock.fileno(), address, len(address)) != 0:
        raise ctypes.WinError(ws2.WSAGetLastError())
