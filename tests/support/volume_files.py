"""What a test sees in a volume: every user-visible file, as a pod would read it."""

from __future__ import annotations

import os
import posixpath
import stat

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
RESERVED_PREFIX = ".."


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

    Follows the top-level symlinks (only when they resolve inside the target) and never follows
    symlinks below them; the agent itself reads volumes only through ``agent.fs.named_files``.
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
