"""Mount-table helpers so tests can prove nothing is left mounted."""

from __future__ import annotations

import ctypes
import os

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
