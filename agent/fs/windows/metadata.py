"""``VolumeMetadataStore`` of a Windows node: the same JSON record as on Linux, by path.

Same file name (``..agent-volume.json``) and contents as ``agent.fs.metadata``; written to a
temporary file, flushed (the volume is on the node's disk) and renamed over.
"""

from __future__ import annotations

import os

from agent.fs.capacity import VolumeCapacity
from agent.fs.layout import METADATA_FILE
from agent.fs.metadata import MetadataFiles, decode_document
from agent.fs.windows.entries import is_plain_file, lstat_or_none
from agent.fs.windows.layout import replace_durably
from agent.fs.windows.volumes import PathVolumes


class PathVolumeMetadata(MetadataFiles):
    def __init__(self, volumes: PathVolumes, capacity: VolumeCapacity | None = None) -> None:
        super().__init__(capacity)
        self._volumes = volumes

    def _save_sync(self, target: str, document: bytes) -> None:
        replace_durably(self._volumes.target_dir_of(target), METADATA_FILE, document)

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
            return decode_document(handle.read())
