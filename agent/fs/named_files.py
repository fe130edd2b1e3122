"""Read named files of a mounted volume for a synced Secret, confined to the volume.

The target is opened by the confined walker (``KubeletVolumes``: every directory from the
kubelet root down with ``O_NOFOLLOW`` relative to its parent), and every file below it is read
relative to that descriptor, one component at a time, never through a symlink. So neither a link
planted at or above the target (a pod directory pointing at a node directory) nor one inside the
volume can make the agent copy a node file into a Kubernetes Secret. Blocking: run in a worker
thread.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable

from agent.errors import PayloadError
from agent.fs.confined import KubeletVolumes
from agent.fs.files import open_subdir, read_regular
from agent.fs.layout import DATA_DIR, RESERVED_PREFIX
from agent.fs.paths import validate_path


def read_named_files(
    volumes: KubeletVolumes, target: str, paths: Iterable[str], limit: int
) -> dict[str, bytes | None]:
    """Named user-visible files of the volume at ``target``, read from one content version.

    Returns ``path -> bytes``, or None for a file larger than ``limit`` bytes; a path that is
    not a regular file of the volume is left out. Raises InvalidRequest when the target fails
    the kubelet path rules or passes through a symlink, FileNotFoundError when it is gone, and
    OSError when it cannot be opened. Paths are checked first (``validate_path``). Written by
    the atomic writer, all files come from the directory ``..data`` points to, so a swap during
    the read cannot mix two versions (retried if the swap removed it meanwhile); a volume a
    legacy plugin wrote itself (files directly in the target) is read through its top-level
    entries, where a link is followed only when its text is a relative path inside the volume.
    """
    wanted = sorted(set(paths))
    target_fd = volumes.open_target_path(target)
    try:
        for _ in range(3):
            try:
                return _read_version(target_fd, wanted, limit)
            except _SwappedDuringRead:
                continue
        return _read_version(target_fd, wanted, limit)
    finally:
        os.close(target_fd)


class _SwappedDuringRead(Exception):
    pass


def _read_version(target_fd: int, paths: list[str], limit: int) -> dict[str, bytes | None]:
    try:
        version = os.readlink(DATA_DIR, dir_fd=target_fd)
    except OSError:
        return _read_legacy(target_fd, paths, limit)
    if "/" in version or not version.startswith(RESERVED_PREFIX):
        return {}
    try:
        data_fd = open_subdir(target_fd, [version], create=False)
    except FileNotFoundError:
        raise _SwappedDuringRead from None
    try:
        return _read_each(data_fd, paths, limit)
    finally:
        os.close(data_fd)


def _read_each(dir_fd: int, paths: list[str], limit: int) -> dict[str, bytes | None]:
    found: dict[str, bytes | None] = {}
    for path in paths:
        if _projectable(path):
            _read_into(found, dir_fd, path, path, limit)
    return found


def _read_legacy(target_fd: int, paths: list[str], limit: int) -> dict[str, bytes | None]:
    found: dict[str, bytes | None] = {}
    for path in paths:
        if not _projectable(path):
            continue
        head, _, tail = path.partition("/")
        entry = _top_level_entry(target_fd, head)
        if entry is not None:
            leads_to = posixpath.join(entry, tail) if tail else entry
            _read_into(found, target_fd, path, leads_to, limit)
    return found


def _top_level_entry(target_fd: int, name: str) -> str | None:
    """Where the top-level entry ``name`` leads inside the volume: itself, or the text of a
    link to a relative path that stays in the volume; None for any other link (absolute, or
    leaving through ``..``: nothing outside the volume is read)."""
    try:
        text = os.readlink(name, dir_fd=target_fd)
    except OSError:
        return name  # not a link (or missing: the read below finds nothing)
    if text.startswith("/"):
        return None
    resolved = posixpath.normpath(text)
    if resolved in (".", "..") or resolved.startswith("../"):
        return None
    return resolved


def _read_into(
    found: dict[str, bytes | None], dir_fd: int, name: str, path: str, limit: int
) -> None:
    read = read_regular(dir_fd, path, limit + 1)
    if read is not None:
        found[name] = read[0] if len(read[0]) <= limit else None


def _projectable(path: str) -> bool:
    try:
        validate_path(path)
    except PayloadError:
        return False
    return True
