"""``VolumeMounter`` implementations: a real tmpfs (Linux) or a plain directory (Windows, demos)."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
from collections.abc import Sequence
from functools import cache

from agent.aio.threads import run_blocking
from agent.errors import ConfigError, MountError, MountPointError
from agent.fs.files import clear_target
from agent.ports import VolumeMounter

TARGET_DIR_MODE = 0o750
MNT_DETACH = 2
# mount(2) flags for the options we translate; anything else goes to the tmpfs data string.
_FLAGS = {
    "ro": 1,
    "nosuid": 2,
    "nodev": 4,
    "noexec": 8,
    "sync": 16,
    "noatime": 1024,
    "nodiratime": 2048,
    "relatime": 1 << 21,
}
# Stacked mounts on one target are unmounted one by one; this bounds a runaway loop.
_MAX_UNMOUNTS = 16


@cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _raise_errno(what: str) -> None:
    code = ctypes.get_errno()
    raise OSError(code, f"{what}: {os.strerror(code)}")


def _sys_mount(target: str, flags: int, data: str) -> None:
    rc = _libc().mount(b"tmpfs", os.fsencode(target), b"tmpfs", flags, data.encode())
    if rc != 0:
        _raise_errno("mount")


def _sys_umount(target: str) -> None:
    path = os.fsencode(target)
    if _libc().umount2(path, 0) == 0:
        return
    if ctypes.get_errno() != errno.EBUSY:
        _raise_errno("umount")
    # Busy (a process still holds a file open): detach lazily, as kubelet's mounter does.
    if _libc().umount2(path, MNT_DETACH) != 0:
        _raise_errno("umount")


def _unescape_mountinfo(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal sequences.
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_points() -> set[str]:
    """Every mount point of this mount namespace (from /proc/self/mountinfo)."""
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as handle:
        return {_unescape_mountinfo(line.split(" ")[4]) for line in handle if line.strip()}


def _is_mount_point(target: str) -> bool:
    """Whether ``target`` is a mount point; raises FileNotFoundError when it is missing."""
    try:
        own, parent = os.lstat(target), os.stat(os.path.dirname(os.path.abspath(target)))
    except OSError as exc:
        # A dead mount (ENOTCONN, EIO, ...) fails stat but is still listed in mountinfo.
        if isinstance(exc, FileNotFoundError) or not os.path.exists("/proc/self/mountinfo"):
            raise
    else:
        # A tmpfs always has a device of its own: that answers without reading mountinfo,
        # which on a busy node has thousands of lines. Same device may still be a bind mount.
        if own.st_dev != parent.st_dev:
            return True
    try:
        return os.path.realpath(target) in mount_points()
    except OSError:
        return False  # no /proc and the same device as the parent: not a mount we made


def _is_mounted_sync(target: str) -> bool:
    try:
        if not _is_mount_point(target):
            return False
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise MountPointError(
            f"failed to check if target path {target} is mount point: {exc.strerror or exc}"
        ) from None
    try:
        os.listdir(target)
    except OSError:
        # Corrupt mount: unmount it so the caller mounts afresh, as upstream does.
        with contextlib.suppress(OSError):
            _sys_umount(target)
        return False
    return True


def _make_target(target: str) -> None:
    if not os.path.isdir(target):
        # kubelet >= 1.20 creates only the parent of the target path.
        os.makedirs(target, mode=TARGET_DIR_MODE, exist_ok=True)
        os.chmod(target, TARGET_DIR_MODE)


def _unmount_sync(target: str) -> None:
    # Remove content first so secrets are gone even if the unmount itself fails.
    with contextlib.suppress(OSError):
        clear_target(target)
    try:
        for _ in range(_MAX_UNMOUNTS):
            if not _is_mount_point(target):
                break
            _sys_umount(target)
        os.rmdir(target)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise MountError(f"failed to unmount {target}: {exc.strerror or exc}") from None


class TmpfsMounter:
    """Mounts a tmpfs per volume through mount(2); needs CAP_SYS_ADMIN."""

    def __init__(
        self,
        size_bytes: int | None = None,
        options: Sequence[str] = ("nosuid", "nodev", "noexec"),
    ) -> None:
        if size_bytes is not None and size_bytes <= 0:
            raise ConfigError(f"tmpfs size must be positive, got {size_bytes}")
        self._flags = 0
        data = [f"size={size_bytes}"] if size_bytes is not None else []
        for option in options:
            if option in _FLAGS:
                self._flags |= _FLAGS[option]
            else:
                data.append(option)
        # Upstream's tmpfs root is 1777; 0755 keeps other users on the node from adding files.
        if not any(item.startswith("mode=") for item in data):
            data.append("mode=0755")
        self.data = ",".join(data)

    async def is_mounted(self, target: str) -> bool:
        return await run_blocking(_is_mounted_sync, target)

    async def mount(self, target: str) -> None:
        await run_blocking(self._mount_sync, target)

    def _mount_sync(self, target: str) -> None:
        if _is_mounted_sync(target):
            return
        try:
            _make_target(target)
            _sys_mount(target, self._flags, self.data)
        except OSError as exc:
            raise MountError(f"failed to mount tmpfs at {target}: {exc.strerror or exc}") from None

    async def unmount(self, target: str) -> None:
        await run_blocking(_unmount_sync, target)

    async def is_empty(self, target: str) -> bool:
        return not await run_blocking(_has_entries, target)


def _has_entries(target: str) -> bool:
    try:
        with os.scandir(target) as entries:
            return next(entries, None) is not None
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        raise MountPointError(f"failed to read target path {target}: {exc.strerror}") from None


def _dir_mount(target: str) -> None:
    try:
        _make_target(target)
    except OSError as exc:
        raise MountError(f"failed to create {target}: {exc.strerror or exc}") from None


def _dir_unmount(target: str) -> None:
    try:
        clear_target(target)
        os.rmdir(target)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise MountError(f"failed to remove {target}: {exc.strerror or exc}") from None


class DirectoryMounter:
    """No real mount: a directory on the node's disk (upstream's Windows behaviour).

    A non-empty directory counts as mounted, exactly as upstream decides on Windows.
    """

    async def is_mounted(self, target: str) -> bool:
        return await run_blocking(_has_entries, target)

    async def mount(self, target: str) -> None:
        await run_blocking(_dir_mount, target)

    async def unmount(self, target: str) -> None:
        await run_blocking(_dir_unmount, target)

    async def is_empty(self, target: str) -> bool:
        return not await run_blocking(_has_entries, target)


def make_mounter(mode: str, size_bytes: int | None = None) -> VolumeMounter:
    """``"tmpfs"`` or ``"directory"``; anything else is a ConfigError."""
    if mode == "tmpfs":
        return TmpfsMounter(size_bytes)
    if mode == "directory":
        return DirectoryMounter()
    raise ConfigError(f"unknown mount mode {mode!r}: expected 'tmpfs' or 'directory'")
