"""Mount-table helpers so tests can prove nothing is left mounted."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agent.fs.mount_syscalls import is_tmpfs

MNT_DETACH = 2


def mounts_under(prefix: str) -> list[str]:
    """Mount points at or below ``prefix`` (from /proc/self/mountinfo; octal escapes decoded)."""
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        for line in handle:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == prefix or point.startswith(prefix.rstrip("/") + "/"):
                found.append(point)
    return found


def force_unmount_under(prefix: str) -> list[str]:
    """Last-resort cleanup after a failing test; returns what had to be unmounted."""
    leaked = sorted(mounts_under(prefix), key=len, reverse=True)
    libc = ctypes.CDLL(None, use_errno=True)
    for point in leaked:
        libc.umount2(os.fsencode(point), MNT_DETACH)
    return leaked


def is_root() -> bool:
    return os.geteuid() == 0


@contextmanager
def off_tmpfs(directory: Path) -> Iterator[Path]:
    """``directory`` on a file system that is no tmpfs, as the node's disk is: as it is when
    it already is one, else (a temporary directory in a tmpfs) with a ramfs mounted on it for
    the block. Root only in the second case."""
    if not _on_tmpfs(directory):
        yield directory
        return
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.mount(b"ramfs", os.fsencode(directory), b"ramfs", 0, None) == 0
    try:
        yield directory
    finally:
        libc.umount2(os.fsencode(directory), MNT_DETACH)


def _on_tmpfs(path: Path) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        return is_tmpfs(fd)
    finally:
        os.close(fd)
