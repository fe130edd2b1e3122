"""Named files of a Windows volume, for sync as Kubernetes Secret (``agent.sync.data``).

The counterpart of ``agent.fs.files.read_named_files``: each path is checked with the Windows
name rules, reached through plain directories only (no link or reparse point is followed) and
read up to a limit. Files are read one by one: a rotation that replaces several files can be
seen half-way (``agent.fs.windows.writer`` says why).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Final

from agent.errors import InvalidRequest, PayloadError
from agent.fs.paths import validate_path
from agent.fs.windows.entries import plain_file
from agent.fs.windows.volumes import PathVolumes


class WindowsVolumeReader:
    def __init__(self, volumes: PathVolumes) -> None:
        self._volumes = volumes

    def __call__(self, target: str, paths: Iterable[str], limit: int) -> dict[str, bytes | None]:
        """``path -> bytes`` (None above ``limit`` bytes); unusable paths are left out."""
        try:
            directory = self._volumes.target_dir_of(target)
        except (FileNotFoundError, InvalidRequest):
            return {}
        found: dict[str, bytes | None] = {}
        for path in sorted(set(paths)):
            data = _read(directory, path, limit)
            if data is not _MISSING:
                found[path] = data
        return found


class _Missing(enum.Enum):
    MISSING = enum.auto()


_MISSING: Final = _Missing.MISSING


def _read(directory: str, path: str, limit: int) -> bytes | _Missing | None:
    try:
        validate_path(path, windows=True)
    except PayloadError:
        return _MISSING
    found = plain_file(directory, path)
    if found is None:
        return _MISSING
    try:
        with open(found[0], "rb") as handle:
            data = handle.read(limit + 1)
    except OSError:
        return _MISSING
    return data if len(data) <= limit else None
