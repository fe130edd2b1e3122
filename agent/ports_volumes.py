"""The file-system ports the core talks to: mounting a volume, writing its files, reading them
back, and the small metadata record beside each volume. agent/fs implements them (tmpfs on
Linux, a directory on Windows); the other ports are in agent/ports.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from agent.model import SecretFile, VolumeState


class VolumeMounter(Protocol):
    """Mounts the backing filesystem of a volume (tmpfs on Linux, a plain directory otherwise).

    Acts only on kubelet target paths below the kubelet root and never through a symlink;
    a target that breaks a rule raises InvalidRequest naming it (``agent.targets``). Like every
    file-system port, a cancelled call returns only once its work has finished, so the undo
    that follows never races it (see agent.aio.threads.run_blocking).
    """

    async def is_mounted(self, target: str) -> bool:
        """True when a volume is mounted at target. A dead mount is detached first."""
        ...

    async def inspect(self, target: str) -> VolumeState | None:
        """What a volume at target holds, for a target the mount table does not know.

        None when there is no volume to keep (no directory, an empty one, or one holding only
        the agent's leftovers). InvalidRequest when target is not a mount and holds files the
        agent did not write: it is never mounted over.
        """
        ...

    async def mount(self, target: str) -> None:
        """Create the target directory (kubelet made its parent) and mount it; idempotent."""
        ...

    async def unmount(self, target: str) -> None:
        """Remove the agent's files, unmount, remove the directory. Missing target is fine;
        a target holding files the agent did not write is refused (InvalidRequest), after the
        agent's own are removed when they lie beside them below its names. Another file
        system mounted at a tmpfs-mode target is detached with its content untouched."""
        ...

    async def discover(self) -> list[str]:
        """Every target below the kubelet root that holds a volume (restart recovery, which
        then inspects each, so the rules a publish applies decide what is adopted)."""
        ...


class PayloadWriter(Protocol):
    async def write(
        self, target: str, files: Sequence[SecretFile], *, gid: int | None = None
    ) -> bool:
        """Atomically replace the volume's visible files; return False when nothing changed.

        ``gid`` (the pod's fsGroup) is the group of every file and directory written, their
        modes unchanged; None leaves the agent's. A volume whose files have another group is
        rewritten. Windows has no such group: ignored there."""
        ...


# Reads named files of a mounted volume (blocking; sync as Kubernetes Secret reads with it):
# ``(target, paths, limit) -> {path: bytes, or None when larger than limit}``; a path that is
# not a regular file of the volume is left out.
VolumeFileReader = Callable[[str, Iterable[str], int], dict[str, bytes | None]]


class VolumeMetadataStore(Protocol):
    """Keeps a small non-secret record beside each volume so a restart can rebuild state."""

    async def save(self, target: str, document: Mapping[str, object]) -> None:
        """Persist plain JSON data; the caller leaves secret material (tokens) out."""
        ...

    async def load(self, target: str) -> dict[str, object] | None: ...


# Optional blocking forms of the file-system ports. The core calls them only from a worker
# thread (``agent.aio.threads.run_blocking``), one after the other in one hop, so a publish pays
# one thread wake-up for the mount, the write and the saves instead of one each. Same behaviour
# and errors as the async methods they stand beside.


@runtime_checkable
class BlockingMounter(Protocol):
    def mount_blocking(self, target: str) -> None: ...


@runtime_checkable
class BlockingPayloadWriter(Protocol):
    def write_blocking(
        self, target: str, files: Sequence[SecretFile], gid: int | None = None
    ) -> bool: ...


@runtime_checkable
class BlockingMetadataStore(Protocol):
    def save_blocking(self, target: str, document: Mapping[str, object]) -> None: ...


# The check of a first publish: the mount-point inspection and, when the class source re-reads
# files (``ports.BlockingClassReader``), that re-read, one after the other in one hop: the
# store's hop when the provider could be asked first (``agent.core.first_publish``), else a hop
# of its own.


@runtime_checkable
class BlockingInspector(Protocol):
    def inspect_blocking(self, target: str) -> VolumeState | None: ...
