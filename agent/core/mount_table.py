"""The agent's in-memory record of mounted volumes, keyed by target path."""

from __future__ import annotations

from collections.abc import Iterator

from agent.model import VolumeRecord


class MountTable:
    def __init__(self) -> None:
        self._volumes: dict[str, VolumeRecord] = {}

    def get(self, target_path: str) -> VolumeRecord | None:
        return self._volumes.get(target_path)

    def put(self, record: VolumeRecord) -> None:
        self._volumes[record.target_path] = record

    def forget(self, target_path: str) -> VolumeRecord | None:
        return self._volumes.pop(target_path, None)

    def __len__(self) -> int:
        return len(self._volumes)

    def __iter__(self) -> Iterator[VolumeRecord]:
        return iter(list(self._volumes.values()))
