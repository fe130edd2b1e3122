"""Low-level file helpers that never follow a symlink planted inside a volume.

Files are created relative to directory file descriptors opened with ``O_NOFOLLOW``, so a symlink
left in the volume (by an old provider, or a compromised one) cannot redirect a write, a read or a
removal outside the target directory.
"""

from __future__ import annotations

import contextlib
import os
import stat

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_DIR_FLAGS = os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC
DIR_MODE = 0o755


def open_dir(path: str) -> int:
    """Open a directory without following a final symlink."""
    return os.open(path, _DIR_FLAGS)


def open_subdir(root_fd: int, parts: list[str], *, create: bool, gid: int | None = None) -> int:
    """Open ``root/parts...`` component by component; optionally create missing ones (0755,
    in group ``gid`` when given)."""
    fd = os.dup(root_fd)
    try:
        for name in parts:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, DIR_MODE, dir_fd=fd)
            child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
            if create:
                set_owner_and_mode(fd, DIR_MODE, gid=gid)
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_new_file(
    dir_fd: int, name: str, contents: bytes, mode: int, *, uid: int | None, gid: int | None
) -> None:
    """Create ``name`` exclusively (never through a symlink) with an exact mode and owner."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
    fd = os.open(name, flags, 0o600, dir_fd=dir_fd)
    try:
        view = memoryview(contents)
        while view:
            view = view[os.write(fd, view) :]
        set_owner_and_mode(fd, mode, uid=uid, gid=gid)
    finally:
        os.close(fd)


def set_owner_and_mode(
    fd: int, mode: int, *, uid: int | None = None, gid: int | None = None
) -> None:
    """Give an open file or directory its owner (None: unchanged), then its exact mode."""
    if uid is not None or gid is not None:
        os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)
    # Chmod after chown: creation applies the umask, and chown may clear mode bits.
    os.fchmod(fd, mode)


def read_regular(root_fd: int, path: str, limit: int) -> tuple[bytes, os.stat_result] | None:
    """Read at most ``limit`` bytes of a regular file below ``root_fd``; None if unusable."""
    parts = path.split("/")
    try:
        dir_fd = open_subdir(root_fd, parts[:-1], create=False)
    except OSError:
        return None
    try:
        fd = os.open(parts[-1], os.O_RDONLY | _NOFOLLOW | _CLOEXEC | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:
        return None
    finally:
        os.close(dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        chunks: list[bytes] = []
        remaining = limit
        while remaining > 0:
            chunk = os.read(fd, remaining)
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks), st
    except OSError:
        return None
    finally:
        os.close(fd)
