"""``VolumeMetadataStore`` of a Windows node: the same JSON record as on Linux, by path.

Same file name (``..agent-volume.json``) and contents as ``agent.fs.metadata``; written to a
temporary file, flushed (the volume is on the node's disk) and renamed over.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
from collections.abc import Mapping

from agent.aio.threads import run_blocking
from agent.errors import FileWriteError, MountPointError
from agent.fs.capacity import VolumeCapacity
from agent.fs.layout import METADATA_FILE
from agent.fs.windows.entries import is_plain_file, lstat_or_none, unlink
from agent.fs.windows.layout import write_durably
from agent.fs.windows.volumes import PathVolumes


class PathVolumeMetadata:
    def __init__(self, volumes: PathVolumes, capacity: VolumeCapacity | None = None) -> None:
        self._volumes = volumes
        self._capacity = capacity or VolumeCapacity()

    async def save(self, target: str, document: Mapping[str, object]) -> None:
        encoded = json.dumps(document, sort_keys=True).encode()
        try:
            await run_blocking(self._save_sync, target, encoded)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise self._capacity.full(target) from None
            raise FileWriteError(
                f"failed to save volume metadata in {target}: {exc.strerror or exc}"
            ) from None

    def _save_sync(self, target: str, document: bytes) -> None:
        directory = self._volumes.target_dir_of(target)
        tmp = os.path.join(directory, f"{METADATA_FILE}.{secrets.token_hex(4)}.tmp")
        try:
            write_durably(tmp, document)
            os.replace(tmp, os.path.join(directory, METADATA_FILE))
        except BaseException:
            unlink(tmp)
            raise

    async def load(self, target: str) -> dict[str, object] | None:
        try:
            return await run_blocking(self._load_sync, target)
        except OSError as exc:
            raise MountPointError(
                f"failed to read volume metadata in {target}: {exc.strerror or exc}"
            ) from None

    def _load_sync(self, target: str) -> dict[str, object] | None:
        try:
            directory = self._volumes.target_dir_of(target)
        except FileNotFoundError:
            return None
        path = os.path.join(directory, METADATA_FILE)
        info = lstat_or_none(path)
        if info is None or not is_plain_file(info):
            return None  # missing, or planted as a link: never read through
        with open(path, "rb") as handle:
            raw = handle.read()
        try:
            document = json.loads(raw)
        except ValueError:
            return None
        return document if isinstance(document, dict) else None
