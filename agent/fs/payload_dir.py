"""One version of a volume's content: a timestamped directory below the target.

The atomic writer (agent/fs/atomic_writer.py) makes the version visible through ``..data``;
this module works inside one: it tells whether the current version already holds a payload
(``differs``, ``paths_to_remove``), creates a new directory (``new_ts_dir``, 0755 whatever the
umask) and writes a payload into it (``write_payload``). Every path is opened relative to the
target's descriptor, never through a symlink (agent/fs/files.py).
"""

from __future__ import annotations

import errno
import os
import posixpath
import secrets
import stat
import time
from collections.abc import Sequence

from agent.errors import FileWriteError
from agent.fs import files as _files
from agent.model import SecretFile

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def paths_to_remove(target_fd: int, files: Sequence[SecretFile], old: str) -> set[str]:
    """Paths present in the old directory that the new payload no longer has."""
    existing: set[str] = set()
    old_fd = _files.open_subdir(target_fd, [old], create=False)
    try:
        for dirpath, dirnames, filenames, _ in os.fwalk(dir_fd=old_fd):
            rel = posixpath.normpath(dirpath)
            for name in dirnames + filenames:
                existing.add(name if rel == "." else f"{rel}/{name}")
    finally:
        os.close(old_fd)
    wanted: set[str] = set()
    for file in files:
        path = file.path
        while path:
            wanted.add(path)
            path = posixpath.dirname(path)
    return existing - wanted


def differs(
    target_fd: int, files: Sequence[SecretFile], old: str, uid: int | None, gid: int | None
) -> bool:
    """True when the directory ``old`` does not hold ``files`` as they are (content, mode,
    and the owner when one is asked for); paths it has beyond them are ``paths_to_remove``."""
    # Upstream compares bytes only; a changed mode or owner is also a change here, so
    # per-object modes and ownership take effect without waiting for a content change.
    root_fd = _files.open_subdir(target_fd, [old], create=False)
    try:
        for file in files:
            found = _files.read_regular(root_fd, file.path, len(file.contents) + 1)
            if found is None:
                return True
            data, st = found
            if data != file.contents or stat.S_IMODE(st.st_mode) != file.mode:
                return True
            if (uid is not None and st.st_uid != uid) or (gid is not None and st.st_gid != gid):
                return True
        return False
    finally:
        os.close(root_fd)


def new_ts_dir(target_fd: int, gid: int | None = None) -> tuple[str, int]:
    """A new timestamped directory (0755, in group ``gid`` when given): its name and an open
    descriptor of it."""
    prefix = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime())
    for _ in range(100):
        name = prefix + secrets.token_hex(4)
        try:
            # 0755 (set below) lets group/other traverse regardless of the process umask.
            os.mkdir(name, 0o700, dir_fd=target_fd)
        except FileExistsError:
            continue
        fd = _files.open_subdir(target_fd, [name], create=False)
        try:
            _files.set_owner_and_mode(fd, _files.DIR_MODE, gid=gid)
        except BaseException:
            os.close(fd)
            raise
        return name, fd
    raise FileExistsError(errno.EEXIST, "no unused name for a timestamped directory")


def write_payload(
    target: str, files: Sequence[SecretFile], root_fd: int, uid: int | None, gid: int | None
) -> None:
    """Write ``files`` below ``root_fd`` (the new directory), then close it."""
    try:
        for file in files:
            parts = file.path.split("/")
            try:
                # A top-level file (the common case) goes straight into the directory.
                nested = len(parts) > 1
                dir_fd = (
                    _files.open_subdir(root_fd, parts[:-1], create=True, gid=gid)
                    if nested
                    else root_fd
                )
                try:
                    _files.write_new_file(
                        dir_fd, parts[-1], file.contents, file.mode, uid=uid, gid=gid
                    )
                finally:
                    if nested:
                        os.close(dir_fd)
            except OSError as exc:
                if exc.errno in NO_SPACE:
                    raise
                raise FileWriteError(
                    f"failed to write file {file.path!r} in {target}: {exc.strerror or exc}"
                ) from None
    finally:
        os.close(root_fd)
