"""The agent's in-memory record of mounted volumes, keyed by target path."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from agent.model import VolumeRecord


class MountTable:
    def __init__(self) -> None:
        self._volumes: dict[str, VolumeRecord] = {}
        self._listeners: list[Callable[[VolumeRecord], None]] = []

    def subscribe(self, listener: Callable[[VolumeRecord], None]) -> None:
        """Call ``listener`` with every record put (e.g. so a pod deleted while its volume
        was being published is still cleaned up). It must not block or raise."""
        self._listeners.append(listener)

    def get(self, target_path: str) -> VolumeRecord | None:
        return self._volumes.get(target_path)

    def put(self, record: VolumeRecord) -> None:
        self._volumes[record.target_path] = record
        for listener in self._listeners:
            listener(record)

    def of_pod(self, pod_uid: str) -> list[VolumeRecord]:
        return [record for record in self._volumes.values() if record.pod.uid == pod_uid]

    def forget(self, target_path: str) -> VolumeRecord | None:
        return self._volumes.pop(target_path, None)

    def __len__(self) -> int:
        return len(self._volumes)

    def __iter__(self) -> Iterator[VolumeRecord]:
        return iter(list(self._volumes.values()))
