"""Path-based primitives for the Windows volume stack: what counts as a link, how to remove one.

Windows has no ``openat``/``O_NOFOLLOW`` descriptors for directories, so the Windows stack
checks each component with ``lstat`` and refuses anything that redirects: a symlink, and on
NTFS every reparse point (junctions, mount points, AF_UNIX sockets, cloud placeholders), which
``lstat`` reports through ``st_file_attributes``. On Linux (emulation) the same functions see
symlinks. The check and the use of a path are two steps (a window the descriptor walk on Linux
does not have); on a node only administrators and kubelet can write below the kubelet root.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import sys
from collections.abc import Callable
from typing import Any

FILE_ATTRIBUTE_DIRECTORY = 0x10
FILE_ATTRIBUTE_REPARSE_POINT = 0x400


def is_link_like(info: os.stat_result) -> bool:
    """A symlink, or (Windows) any reparse point: never followed, never trusted."""
    attributes = getattr(info, "st_file_attributes", 0)
    return stat.S_ISLNK(info.st_mode) or bool(attributes & FILE_ATTRIBUTE_REPARSE_POINT)


def is_plain_dir(info: os.stat_result) -> bool:
    return stat.S_ISDIR(info.st_mode) and not is_link_like(info)


def is_plain_file(info: os.stat_result) -> bool:
    return stat.S_ISREG(info.st_mode) and not is_link_like(info)


def lstat_or_none(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def reached(directory: str, path: str) -> str | None:
    """The local path of ``directory/path`` (``path`` "/"-separated, already validated) when
    every directory on the way is a plain directory; None when one is missing or redirects.
    The last component itself is not looked at."""
    parts = path.split("/")
    current = directory
    for name in parts[:-1]:
        current = os.path.join(current, name)
        info = lstat_or_none(current)
        if info is None or not is_plain_dir(info):
            return None
    return os.path.join(current, parts[-1])


def plain_file(directory: str, path: str) -> tuple[str, os.stat_result] | None:
    """The local path and ``lstat`` of ``directory/path`` (``path`` "/"-separated) when it is
    a plain file reached through plain directories only; None otherwise."""
    local = reached(directory, path)
    info = lstat_or_none(local) if local is not None else None
    return (local, info) if local is not None and info is not None and is_plain_file(info) else None


def remove_path(path: str) -> None:
    """Remove ``path`` itself: a link (never its target), a file, or a directory tree.

    A directory link or junction on Windows is removed with rmdir, which removes the link only.
    Read-only files (the upstream driver's 0444 files become read-only on Windows) are made
    writable first, or Windows refuses to delete them.
    """
    info = lstat_or_none(path)
    if info is None:
        return
    if is_link_like(info):
        if getattr(info, "st_file_attributes", 0) & FILE_ATTRIBUTE_DIRECTORY:
            os.rmdir(path)
        else:
            unlink(path)
    elif stat.S_ISDIR(info.st_mode):
        _rmtree(path)
    else:
        unlink(path)


def unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    except PermissionError:
        with contextlib.suppress(OSError):
            os.chmod(path, stat.S_IWRITE)
        os.unlink(path)


def _rmtree(path: str) -> None:
    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=_writable_and_retry)
    else:
        shutil.rmtree(path, onerror=lambda f, p, info: _writable_and_retry(f, p, info[1]))


def _writable_and_retry(function: Callable[..., Any], path: str, error: BaseException) -> None:
    if not isinstance(error, PermissionError) or function not in (os.unlink, os.rmdir):
        raise error
    os.chmod(path, stat.S_IWRITE)
    function(path)
