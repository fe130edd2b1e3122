"""The unix-socket layer: winsock's SOCKADDR_UN bytes, socket detection, and the POSIX sockets
the agent's server and plugin client are built on (the same code path Windows takes)."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import struct
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from agent.config import socket_path_from_endpoint
from agent.errors import ConfigError
from agent.platform import current, emulated_windows, linux
from agent.platform.afunix import (
    AF_UNIX,
    IO_REPARSE_TAG_AF_UNIX,
    UNIX_PATH_MAX,
    PosixUnixSockets,
    WinsockUnixSockets,
    is_af_unix_reparse_point,
    sockaddr_un,
)


def test_sockaddr_un_is_family_then_a_nul_padded_utf8_path() -> None:
    raw = sockaddr_un("C:\\csi\\csi.sock")
    assert len(raw) == 2 + UNIX_PATH_MAX  # sizeof(SOCKADDR_UN) in afunix.h
    assert struct.unpack("<H", raw[:2]) == (1,)
    assert raw[2:].rstrip(b"\0") == b"C:\\csi\\csi.sock"
    assert sockaddr_un("C:\\ü.sock")[2:].rstrip(b"\0") == "C:\\ü.sock".encode()


def test_sockaddr_un_refuses_a_path_that_does_not_fit_or_has_nul() -> None:
    sockaddr_un("C:\\" + "a" * 104)  # 107 bytes: fits with its NUL
    with pytest.raises(OSError, match="unix socket path is 108 bytes") as info:
        sockaddr_un("C:\\" + "a" * 105)
    assert info.value.errno == errno.ENAMETOOLONG
    with pytest.raises(ValueError, match="NUL"):
        sockaddr_un("C:\\a\0b")


def test_a_windows_socket_file_is_told_by_its_reparse_tag() -> None:
    def stat_with(tag: int) -> Any:
        return SimpleNamespace(st_reparse_tag=tag, st_mode=0o100644)

    assert is_af_unix_reparse_point(stat_with(IO_REPARSE_TAG_AF_UNIX))
    assert not is_af_unix_reparse_point(stat_with(0xA000000C))  # a symlink's tag
    assert not is_af_unix_reparse_point(os.lstat(__file__))  # Linux: no tag at all


def test_winsock_calls_refuse_to_run_anywhere_but_windows(tmp_path: Path) -> None:
    # Said plainly: the ctypes path has only ever run on Windows (docs/windows.md).
    with pytest.raises(OSError, match="only available on Windows") as info:
        WinsockUnixSockets().bind(str(tmp_path / "x.sock"))
    assert info.value.errno == errno.EAFNOSUPPORT


async def test_posix_sockets_bind_connect_and_detect(tmp_path: Path) -> None:
    sockets = PosixUnixSockets()
    path = str(tmp_path / "a.sock")
    listener = sockets.bind(path)
    accepted: list[bytes] = []

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(await reader.read(5))
        writer.close()

    server = await asyncio.start_server(on_client, sock=listener)
    try:
        sock = await sockets.connect(path)
        assert not sock.getblocking()
        _, writer = await asyncio.open_connection(sock=sock)
        writer.write(b"hello")
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        for _ in range(100):
            if accepted:
                break
            await asyncio.sleep(0.01)
        assert accepted == [b"hello"]
        assert sockets.is_socket(path)
    finally:
        server.close()
        await server.wait_closed()
    (tmp_path / "file").write_text("x")
    assert not sockets.is_socket(str(tmp_path / "file"))
    with pytest.raises(FileNotFoundError):
        sockets.is_socket(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError):
        await sockets.connect(str(tmp_path / "missing"))


def test_platforms() -> None:
    assert current().name == "linux" and not current().windows
    assert linux().sockets.__class__ is PosixUnixSockets
    emulated = emulated_windows("/tmp/k")
    assert emulated.windows and emulated.emulated and emulated.name == "windows"
    assert isinstance(emulated.sockets, PosixUnixSockets)  # this machine's sockets
    assert socket.AF_UNIX == AF_UNIX  # the number the winsock shim uses


@pytest.mark.parametrize(
    ("endpoint", "path"),
    [
        ("unix://C:\\\\csi\\\\csi.sock", "C:\\csi\\csi.sock"),  # upstream's Windows chart
        ("unix://C:\\csi\\csi.sock", "C:\\csi\\csi.sock"),
        ("unix:///C:/csi/csi.sock", "C:\\csi\\csi.sock"),
        (
            "UNIX://c:/var/lib/kubelet/plugins/x/csi.sock",
            "c:\\var\\lib\\kubelet\\plugins\\x\\csi.sock",
        ),
    ],
)
def test_windows_endpoints(endpoint: str, path: str) -> None:
    assert socket_path_from_endpoint(endpoint, windows=True) == path


@pytest.mark.parametrize(
    "endpoint",
    [
        "unix:///csi/csi.sock",  # no drive
        "unix://\\\\server\\share\\csi.sock",  # UNC
        "unix://\\\\?\\C:\\csi\\csi.sock",  # device path
        "unix://\\\\.\\pipe\\csi",  # a named pipe is not AF_UNIX
        "unix://C:csi.sock",  # drive-relative
        "npipe://./pipe/csi",
        "unix://C:\\" + "a" * 120,
    ],
)
def test_windows_endpoints_refused_name_the_flag(endpoint: str) -> None:
    with pytest.raises(ConfigError, match="--endpoint"):
        socket_path_from_endpoint(endpoint, windows=True)


def test_linux_endpoints_unchanged() -> None:
    assert socket_path_from_endpoint("unix:///csi/csi.sock", windows=False) == "/csi/csi.sock"
    assert socket_path_from_endpoint("unix://tmp/csi.sock", windows=False) == "/tmp/csi.sock"


async def test_a_cancelled_winsock_connect_closes_its_socket_only_after_the_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The blocking connect runs in a thread that a timeout cannot stop: the socket (its
    handle) must stay open until the call returns, or a new socket could reuse the handle
    number and be connected in its place."""
    from agent.platform import afunix

    entered, release = asyncio.Event(), threading.Event()
    seen: list[int] = []
    loop = asyncio.get_running_loop()

    def blocked_connect(name: str, sock: socket.socket, address: bytes) -> None:
        loop.call_soon_threadsafe(entered.set)
        release.wait(10)
        seen.append(sock.fileno())  # -1 once closed
        raise ConnectionRefusedError(errno.ECONNREFUSED, "refused")

    monkeypatch.setattr(afunix, "_winsock_call", blocked_connect)
    sockets: list[socket.socket] = []
    real_socket = socket.socket

    def recording_socket(*args: Any) -> socket.socket:
        sockets.append(real_socket(*args))
        return sockets[-1]

    monkeypatch.setattr(socket, "socket", recording_socket)
    connect = asyncio.ensure_future(WinsockUnixSockets().connect("/nowhere.sock"))
    await entered.wait()
    connect.cancel()
    with pytest.raises(asyncio.CancelledError):
        await connect
    assert sockets[0].fileno() != -1  # still open: the call is running
    release.set()
    for _ in range(1_000_000):  # the thread's end closes it (a yield per turn, no timer)
        if sockets[0].fileno() == -1:
            break
        await asyncio.sleep(0)
    assert sockets[0].fileno() == -1
    assert seen and seen[0] != -1
