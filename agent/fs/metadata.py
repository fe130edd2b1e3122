"""``VolumeMetadataStore``: a small JSON record beside each volume, for rebuilding state on restart.

The file is ``<target>/..agent-volume.json``: the ``..`` prefix keeps it out of the user-visible
names and out of reach of the atomic writer; unpublish (``clear_target``) removes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import tempfile
from collections.abc import Mapping
from datetime import datetime
from enum import Enum

from agent.errors import FileWriteError, MountPointError

METADATA_FILE = "..agent-volume.json"
# Never persisted: service-account tokens (the key), plus any dataclass field the model hides
# from repr, which is how model.py marks secret material.
_DROPPED_KEYS = frozenset({"tokens"})
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def to_jsonable(value: object) -> object:
    """Plain JSON types from dataclasses, mappings and sequences, without secret fields."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_jsonable(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.repr and f.name not in _DROPPED_KEYS
        }
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items() if k not in _DROPPED_KEYS}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return to_jsonable(value.value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"cannot store a {type(value).__name__} in volume metadata")


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

    async def save(self, target: str, record: object) -> None:
        document = json.dumps(to_jsonable(record), sort_keys=True).encode()
        try:
            await asyncio.to_thread(_save_sync, target, document)
        except OSError as exc:
            raise FileWriteError(
                f"failed to save volume metadata in {target}: {exc.strerror or exc}"
            ) from None

    async def load(self, target: str) -> dict[str, object] | None:
        """The saved document, or None when there is none (or it is unreadable JSON)."""
        try:
            return await asyncio.to_thread(_load_sync, target)
        except OSError as exc:
            raise MountPointError(
                f"failed to read volume metadata in {target}: {exc.strerror or exc}"
            ) from None
