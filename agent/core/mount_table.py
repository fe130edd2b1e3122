"""The agent's in-memory record of mounted volumes, keyed by target path.

Also indexed by pod status name: upstream names a SecretProviderClassPodStatus
``<pod>-<namespace>-<class>``, so two volumes of one pod that use the same class share one
status, and publish and unpublish must know whether another live volume still needs it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from agent.model import PodIdentity, VolumeRecord, pod_status_name

StatusKey = tuple[str, str]  # (namespace, status name)


def pod_status_key(pod: PodIdentity, spc_name: str) -> StatusKey:
    return pod.namespace, pod_status_name(pod.name, pod.namespace, spc_name)


def status_key(record: VolumeRecord) -> StatusKey:
    return pod_status_key(record.pod, record.spc_name)


class MountTable:
    def __init__(self) -> None:
        self._volumes: dict[str, VolumeRecord] = {}
        self._by_status: dict[StatusKey, list[str]] = {}
        self._listeners: list[Callable[[VolumeRecord], None]] = []

    def subscribe(self, listener: Callable[[VolumeRecord], None]) -> None:
        """Call ``listener`` with every record put (e.g. so a pod deleted while its volume
        was being published is still cleaned up). It must not block or raise."""
        self._listeners.append(listener)

    def get(self, target_path: str) -> VolumeRecord | None:
        return self._volumes.get(target_path)

    def put(self, record: VolumeRecord) -> None:
        previous = self._volumes.get(record.target_path)
        if previous is not None and status_key(previous) == status_key(record):
            self._volumes[record.target_path] = record  # keeps its place as status owner
        else:
            self.forget(record.target_path)
            self._volumes[record.target_path] = record
            self._by_status.setdefault(status_key(record), []).append(record.target_path)
        for listener in self._listeners:
            listener(record)

    def of_pod(self, pod_uid: str) -> list[VolumeRecord]:
        return [record for record in self._volumes.values() if record.pod.uid == pod_uid]

    def forget(self, target_path: str) -> VolumeRecord | None:
        record = self._volumes.pop(target_path, None)
        if record is not None:
            key = status_key(record)
            targets = self._by_status[key]
            targets.remove(target_path)
            if not targets:
                del self._by_status[key]  # nothing may outlive the volume (flat memory)
        return record

    def status_owner(self, key: StatusKey) -> VolumeRecord | None:
        """The live volume the pod status ``key`` describes: the earliest recorded of those
        that share it (later ones never overwrite it), or None."""
        targets = self._by_status.get(key)
        return self._volumes[targets[0]] if targets else None

    def status_owners(self) -> dict[StatusKey, VolumeRecord]:
        """One volume per pod status: the earliest recorded of those that share it."""
        return {key: self._volumes[targets[0]] for key, targets in self._by_status.items()}

    def __len__(self) -> int:
        return len(self._volumes)

    def __iter__(self) -> Iterator[VolumeRecord]:
        return iter(list(self._volumes.values()))
