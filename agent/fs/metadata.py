"""``VolumeMetadataStore``: a small JSON record beside each volume, for rebuilding state on restart.

The file is ``<target>/..agent-volume.json``: the ``..`` prefix keeps it out of the user-visible
names and out of reach of the atomic writer; unpublish (``clear_target``) removes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping

from agent.aio.threads import run_blocking
from agent.errors import FileWriteError, MountPointError

METADATA_FILE = "..agent-volume.json"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _save_sync(target: str, document: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=METADATA_FILE + ".", suffix=".tmp", dir=target)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(document)  # on tmpfs: fsync would buy nothing
        os.replace(tmp, os.path.join(target, METADATA_FILE))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _load_sync(target: str) -> dict[str, object] | None:
    try:
        fd = os.open(os.path.join(target, METADATA_FILE), os.O_RDONLY | _NOFOLLOW)
    except (FileNotFoundError, NotADirectoryError):
        return None
    with os.fdopen(fd, "rb") as handle:
        raw = handle.read()
    try:
        document = json.loads(raw)
    except ValueError:
        return None  # torn or foreign file: the caller treats the volume as unknown
    return document if isinstance(document, dict) else None


class JsonVolumeMetadata:
    """Stores one JSON document per volume, written atomically with mode 0600."""

    async def save(self, target: str, document: Mapping[str, object]) -> None:
        """Callers pass plain JSON data with no secret material (core's record_to_metadata)."""
        encoded = json.dumps(document, sort_keys=True).encode()
        try:
            await run_blocking(_save_sync, target, encoded)
        except OSError as exc:
            raise FileWriteError(
                f"failed to save volume metadata in {target}: {exc.strerror or exc}"
            ) from None

    async def load(self, target: str) -> dict[str, object] | None:
        """The saved document, or None when there is none (or it is unreadable JSON)."""
        try:
            return await run_blocking(_load_sync, target)
        except OSError as exc:
            raise MountPointError(
                f"failed to read volume metadata in {target}: {exc.strerror or exc}"
            ) from None
