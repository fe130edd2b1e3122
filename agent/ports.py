"""The Protocols the core talks to. Adapters (fs/, providers/, standalone/, k8s/) implement them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from agent.model import (
    MountResult,
    PodIdentity,
    PodInfo,
    PodStatus,
    ProviderRequest,
    SecretFile,
    SecretProviderClass,
    ServiceAccountToken,
    VolumeState,
)


class Provider(Protocol):
    """A secret store that can produce the files of one volume."""

    name: str

    async def mount(self, request: ProviderRequest) -> MountResult:
        """Fetch every object of the volume; raise ProviderError on any failure."""
        ...


class ProviderLookup(Protocol):
    def get(self, name: str) -> Provider:
        """Return the provider or raise ProviderNotFound listing what is available."""
        ...

    def names(self) -> Sequence[str]: ...


class SecretProviderClassSource(Protocol):
    async def get(self, namespace: str, name: str) -> SecretProviderClass:
        """Raise SecretProviderClassNotFound when absent."""
        ...


class ServiceAccountSource(Protocol):
    """Reads a pod's service account; providers take cloud identities from its annotations
    (``eks.amazonaws.com/role-arn``, ``azure.workload.identity/client-id``,
    ``iam.gke.io/gcp-service-account``)."""

    async def annotations(self, namespace: str, name: str) -> Mapping[str, str]:
        """``metadata.annotations`` of the service account (empty when it has none).

        Raises ServiceAccountNotFound when the service account does not exist.
        """
        ...


class PodLookup(Protocol):
    """Pods on this node (Kubernetes mode: the pod informer's cache)."""

    async def get(self, namespace: str, name: str) -> PodInfo | None:
        """The pod from the cache, else read directly; None when it does not exist."""
        ...


class PodEventSink(Protocol):
    """Warning events on a pod, for failures its owner can fix (Kubernetes: core/v1 Events,
    aggregated; standalone: nothing beyond the log line every failure already has)."""

    def warning(self, pod: PodIdentity, reason: str, message: str) -> None:
        """Queue the event; never blocks the caller, never raises. ``message`` is already
        vetted (an AgentError message) and carries no secret material."""
        ...


class ServiceAccountTokenMinter(Protocol):
    """Mints a service-account token bound to a pod (``serviceaccounts/token``), for a later
    fetch when kubelet has not sent a fresh one."""

    async def mint(self, pod: PodIdentity, audience: str) -> ServiceAccountToken:
        """Raise an AgentError when the token cannot be had."""
        ...


class PodStatusStore(Protocol):
    async def upsert(self, status: PodStatus) -> None: ...

    async def delete(self, namespace: str, name: str) -> None: ...

    async def load_all(self) -> list[PodStatus]:
        """Every status this node wrote; used to rebuild the mount table after a restart."""
        ...


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
        a target holding files the agent did not write is refused (InvalidRequest)."""
        ...

    async def discover(self) -> list[str]:
        """Every target below the kubelet root that holds a volume (restart recovery)."""
        ...


class PayloadWriter(Protocol):
    async def write(self, target: str, files: Sequence[SecretFile]) -> bool:
        """Atomically replace the volume's visible files; return False when nothing changed."""
        ...


class VolumeMetadataStore(Protocol):
    """Keeps a small non-secret record beside each volume so a restart can rebuild state."""

    async def save(self, target: str, document: Mapping[str, object]) -> None:
        """Persist plain JSON data; the caller leaves secret material (tokens) out."""
        ...

    async def load(self, target: str) -> dict[str, object] | None: ...


class PublishObserver(Protocol):
    """Receives the outcome of every publish/unpublish (metrics). Labels are names, never values."""

    def publish_succeeded(self, provider: str, seconds: float) -> None: ...

    def publish_failed(self, provider: str, error_type: str, seconds: float) -> None: ...

    def remount_done(self, provider: str, rotated: bool, error_type: str, seconds: float) -> None:
        """A republish that refetched (rotation); ``error_type`` is set when it failed (masked)."""
        ...

    def unpublish_succeeded(self) -> None: ...

    def unpublish_failed(self) -> None: ...
