"""``VolumeMetadataStore``: a small JSON record beside each volume, for rebuilding state on restart.

The file is ``<target>/..agent-volume.json``: the ``..`` prefix keeps it out of the user-visible
names and out of reach of the atomic writer; unpublish removes it with the agent's other
files. It is saved only after the content is complete, so a volume with metadata is whole.
The target is opened below the kubelet root without following symlinks (``agent.fs.confined``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
from abc import ABC, abstractmethod
from collections.abc import Mapping

from agent.aio.threads import run_blocking
from agent.errors import FileWriteError, MountPointError
from agent.fs.capacity import VolumeCapacity
from agent.fs.confined import KubeletVolumes
from agent.fs.layout import METADATA_FILE

__all__ = ["METADATA_FILE", "JsonVolumeMetadata"]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def save_in(dir_fd: int, document: bytes) -> None:
    """Write the metadata atomically (a 0600 temporary file renamed over) in ``dir_fd``."""
    tmp = f"{METADATA_FILE}.{secrets.token_hex(4)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
    fd = os.open(tmp, flags, 0o600, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(document)  # on tmpfs: fsync would buy nothing
        os.rename(tmp, METADATA_FILE, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise


def load_from(dir_fd: int) -> dict[str, object] | None:
    """The metadata document in ``dir_fd``, or None when missing, not a file, or not JSON."""
    try:
        fd = os.open(METADATA_FILE, os.O_RDONLY | _NOFOLLOW | _CLOEXEC, dir_fd=dir_fd)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None  # a planted symlink is never read through
        raise
    with os.fdopen(fd, "rb") as handle:
        return decode_document(handle.read())


def decode_document(raw: bytes) -> dict[str, object] | None:
    """The JSON object in ``raw``; None for a torn or foreign file (the caller then treats the
    volume as unknown)."""
    try:
        document = json.loads(raw)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


class MetadataFiles(ABC):
    """The ``VolumeMetadataStore`` port over a platform's ``_save_sync``/``_load_sync`` (run in a
    worker thread); OSError becomes the agent's errors here, for every platform alike."""

    def __init__(self, capacity: VolumeCapacity | None = None) -> None:
        self._capacity = capacity or VolumeCapacity()

    @abstractmethod
    def _save_sync(self, target: str, document: bytes) -> None: ...

    @abstractmethod
    def _load_sync(self, target: str) -> dict[str, object] | None: ...

    async def save(self, target: str, document: Mapping[str, object]) -> None:
        """Callers pass plain JSON data with no secret material (core's record_to_metadata)."""
        await run_blocking(self.save_blocking, target, document)

    def save_blocking(self, target: str, document: Mapping[str, object]) -> None:
        """:meth:`save` in the calling worker thread (``ports_volumes.BlockingMetadataStore``)."""
        encoded = json.dumps(document, sort_keys=True).encode()
        try:
            self._save_sync(target, encoded)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise self._capacity.full(target) from None
            raise FileWriteError(
                f"failed to save volume metadata in {target}: {exc.strerror or exc}"
            ) from None

    async def load(self, target: str) -> dict[str, object] | None:
        """The saved document, or None when there is none (or it is unreadable JSON)."""
        try:
            return await run_blocking(self._load_sync, target)
        except OSError as exc:
            raise MountPointError(
                f"failed to read volume metadata in {target}: {exc.strerror or exc}"
            ) from None


class JsonVolumeMetadata(MetadataFiles):
    """Stores one JSON document per volume, written atomically with mode 0600."""

    def __init__(self, volumes: KubeletVolumes, capacity: VolumeCapacity | None = None) -> None:
        super().__init__(capacity)
        self._volumes = volumes

    def _save_sync(self, target: str, document: bytes) -> None:
        fd = self._volumes.open_target_path(target)
        try:
            save_in(fd, document)
        finally:
            os.close(fd)

    def _load_sync(self, target: str) -> dict[str, object] | None:
        try:
            fd = self._volumes.open_target_path(target)
        except FileNotFoundError:
            return None
        try:
            return load_from(fd)
        finally:
            os.close(fd)
