"""The node's operating system, as the agent sees it: one object chosen at start, injectable.

Everything that differs between a Linux and a Windows node is decided by a
:class:`NodePlatform` instead of scattered ``sys.platform`` checks, so tests on Linux can run
the Windows code paths (path rules, the directory writer, the socket plumbing) by passing
:func:`emulated_windows`:

- target and payload path rules (``agent.targets``, ``agent.fs.paths``): POSIX, or Windows
  (drive letters, backslashes, case-insensitive names, no alternate data streams);
- the volume stack (``agent.fs.stack``): tmpfs or directory with descriptor-confined writes
  on Linux; on Windows a path-based directory writer that needs no POSIX directory
  descriptors and no symlink privilege (``agent.fs.windows``);
- unix sockets (``agent.platform.afunix``): the standard library on Linux; on Windows, where
  CPython has no ``socket.AF_UNIX`` (python/cpython#77589), a small winsock shim;
- the event loop and stop signals (``agent.platform.runtime``).

``local_root`` exists for emulation only: on a real node the kubelet root *is* the local
directory; on Linux emulating Windows, ``C:\\var\\lib\\kubelet`` is stood in for by a
directory of this machine.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from agent.platform.afunix import PosixUnixSockets, UnixSockets, WinsockUnixSockets

__all__ = ["NodePlatform", "current", "emulated_windows", "linux"]


@dataclass(frozen=True, slots=True)
class NodePlatform:
    """What the agent needs to know of the node's OS. ``windows`` selects the rule sets."""

    windows: bool
    sockets: UnixSockets
    local_root: str | None = None
    # Windows: whether Win32 calls of this process take paths over MAX_PATH (260); when not,
    # the writer refuses a payload whose paths would not fit rather than fail half-way.
    long_paths: bool = False

    @property
    def name(self) -> str:
        return "windows" if self.windows else "linux"

    @property
    def emulated(self) -> bool:
        return self.local_root is not None


def linux() -> NodePlatform:
    return NodePlatform(windows=False, sockets=PosixUnixSockets())


def current() -> NodePlatform:
    """The platform of this machine (``sys.platform``)."""
    if sys.platform == "win32":
        return NodePlatform(
            windows=True, sockets=WinsockUnixSockets(), long_paths=_long_paths_enabled()
        )
    return linux()


def _long_paths_enabled() -> bool:
    """``RtlAreLongPathsEnabled`` (Windows 10 1607+): the LongPathsEnabled policy *and* a
    long-path-aware process manifest; False where the call does not exist."""
    import ctypes

    try:
        function = ctypes.WinDLL("ntdll").RtlAreLongPathsEnabled  # type: ignore[attr-defined,unused-ignore]
    except (AttributeError, OSError):
        return False
    function.restype = ctypes.c_ubyte
    function.argtypes = ()
    return bool(function())


def emulated_windows(local_root: str, *, long_paths: bool = False) -> NodePlatform:
    """Windows rules on this (POSIX) machine: the kubelet root named by ``--kubelet-root-dir``
    (``C:\\var\\lib\\kubelet``) lives at ``local_root``; sockets are this machine's. For tests."""
    return NodePlatform(
        windows=True, sockets=PosixUnixSockets(), local_root=local_root, long_paths=long_paths
    )
