"""Low-level file helpers that never follow a symlink planted inside a volume.

Files are created relative to directory file descriptors opened with ``O_NOFOLLOW``, so a symlink
left in the volume (by an old provider, or a compromised one) cannot redirect a write, a read or a
removal outside the target directory.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import stat
from collections.abc import Iterable

from agent.errors import PayloadError
from agent.fs.layout import DATA_DIR, RESERVED_PREFIX
from agent.fs.paths import validate_path

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_DIR_FLAGS = os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC
DIR_MODE = 0o755


def open_dir(path: str) -> int:
    """Open a directory without following a final symlink."""
    return os.open(path, _DIR_FLAGS)


def open_subdir(root_fd: int, parts: list[str], *, create: bool) -> int:
    """Open ``root/parts...`` component by component; optionally create missing ones (0755)."""
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
                # mkdir honours the umask; the layout promises 0755 regardless of it.
                os.fchmod(fd, DIR_MODE)
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
        if uid is not None or gid is not None:
            os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)
        # Explicit chmod after chown: open() applies the umask, and chown may clear mode bits.
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


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


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _read_nofollow(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(os.dup(fd), "rb") as handle:
            return handle.read()
    finally:
        os.close(fd)


def read_visible_files(target: str) -> dict[str, bytes]:
    """User-visible files of a volume: ``relative path -> bytes``, skipping ``..*`` names.

    Follows the top-level symlinks (only when they resolve inside the target, so a planted link
    cannot exfiltrate node files into a synced Secret) and never follows symlinks below them.
    """
    root = os.path.realpath(target)
    try:
        names = sorted(os.listdir(target))
    except FileNotFoundError:
        return {}
    result: dict[str, bytes] = {}
    for name in names:
        if name.startswith(RESERVED_PREFIX):
            continue
        resolved = os.path.realpath(os.path.join(target, name))
        if not _inside(resolved, root) or resolved == root:
            continue
        if os.path.isdir(resolved):
            for dirpath, _dirs, filenames in os.walk(resolved):
                rel_dir = os.path.relpath(dirpath, resolved).replace(os.sep, "/")
                for filename in filenames:
                    data = _read_nofollow(os.path.join(dirpath, filename))
                    if data is not None:
                        rel = filename if rel_dir == "." else f"{rel_dir}/{filename}"
                        result[posixpath.join(name, rel)] = data
        else:
            data = _read_nofollow(resolved)
            if data is not None:
                result[name] = data
    return dict(sorted(result.items()))


def read_named_files(target: str, paths: Iterable[str], limit: int) -> dict[str, bytes | None]:
    """Named user-visible files of a volume, read from one content version.

    ``path -> bytes``, or None for a file larger than ``limit`` bytes; a path that is not a
    regular file of the volume is left out. Paths are checked first (``validate_path``), and
    nothing is read through a symlink below the content directory. Written by the atomic
    writer, all files come from the directory ``..data`` points to, so a swap during the read
    cannot mix two versions (retried if the swap removed it meanwhile); a volume written the
    legacy way (files directly in the target) is read through its top-level entries, which
    must resolve inside the target.
    """
    wanted = sorted(set(paths))
    for _ in range(3):
        try:
            return _read_named(target, wanted, limit)
        except _SwappedDuringRead:
            continue
    return _read_named(target, wanted, limit)


class _SwappedDuringRead(Exception):
    pass


def _read_named(target: str, paths: list[str], limit: int) -> dict[str, bytes | None]:
    root_fd = open_dir(target)
    try:
        try:
            version = os.readlink(DATA_DIR, dir_fd=root_fd)
        except OSError:
            return _read_legacy(target, paths, limit)
        if "/" in version or not version.startswith(RESERVED_PREFIX):
            return {}
        try:
            data_fd = open_subdir(root_fd, [version], create=False)
        except FileNotFoundError:
            raise _SwappedDuringRead from None
        try:
            return _read_each(data_fd, paths, limit)
        finally:
            os.close(data_fd)
    finally:
        os.close(root_fd)


def _read_each(dir_fd: int, paths: list[str], limit: int) -> dict[str, bytes | None]:
    found: dict[str, bytes | None] = {}
    for path in paths:
        if not _projectable(path):
            continue
        read = read_regular(dir_fd, path, limit + 1)
        if read is not None:
            found[path] = read[0] if len(read[0]) <= limit else None
    return found


def _read_legacy(target: str, paths: list[str], limit: int) -> dict[str, bytes | None]:
    root = os.path.realpath(target)
    found: dict[str, bytes | None] = {}
    for path in paths:
        if not _projectable(path):
            continue
        head, _, tail = path.partition("/")
        resolved = os.path.realpath(os.path.join(target, head))
        if not _inside(resolved, root) or resolved == root:
            continue
        parent_fd = open_dir(os.path.dirname(resolved))
        try:
            read = read_regular(
                parent_fd,
                posixpath.join(os.path.basename(resolved), tail)
                if tail
                else os.path.basename(resolved),
                limit + 1,
            )
        finally:
            os.close(parent_fd)
        if read is not None:
            found[path] = read[0] if len(read[0]) <= limit else None
    return found


def _projectable(path: str) -> bool:
    try:
        validate_path(path)
    except PayloadError:
        return False
    return True
