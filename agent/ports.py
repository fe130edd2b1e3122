"""The Protocols the core talks to. Adapters (fs/, providers/, standalone/, k8s/) implement them.

The file-system ports are in agent/ports_volumes.py, secret sync's in agent/ports_sync.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from agent.model import (
    MountResult,
    PodIdentity,
    PodInfo,
    PodStatus,
    ProviderRequest,
    SecretProviderClass,
    ServiceAccountToken,
)


class Provider(Protocol):
    """A secret store that can produce the files of one volume.

    A provider that returns every file and never touches ``request.target_path`` (every
    built-in one) says so with a class attribute ``files_only = True``: publish then asks it
    before mounting and mounts in the same worker-thread hop that writes the files. Without it
    the target is mounted first, as upstream does, since an upstream plugin may write there
    itself (upstream #551).
    """

    name: str

    async def mount(self, request: ProviderRequest) -> MountResult:
        """Fetch every object of the volume; raise ProviderError on any failure."""
        ...


class ProviderLookup(Protocol):
    async def load(self, name: str) -> Provider:
        """Return the provider or raise ProviderNotFound listing what is available; loading a
        provider's libraries never blocks the event loop."""
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


class NodeLabelSource(Protocol):
    """The labels of the node this agent serves (``--nodeid``); providers read its topology
    from them (the AWS provider its region from ``topology.kubernetes.io/region``, as ASCP)."""

    @property
    def node_name(self) -> str:
        """The node's name (``--nodeid``), for messages."""
        ...

    async def labels(self) -> Mapping[str, str]:
        """``metadata.labels`` of the node (empty when it has none).

        Raises NodeNotFound when the node (standalone: its manifest) does not exist, and a
        KubernetesApiError when the API cannot tell (ApiForbidden names the RBAC rule needed).
        """
        ...


class PodLookup(Protocol):
    """Pods on this node (Kubernetes mode: the pod informer's cache)."""

    async def get(self, namespace: str, name: str) -> PodInfo | None:
        """The pod from the cache, else read directly; None when it does not exist."""
        ...


class PodEventSink(Protocol):
    """Events on a pod: failures its owner can fix, and upstream's Normal events for work done
    on its behalf (Kubernetes: core/v1 Events, aggregated; standalone: nothing beyond the log
    line every outcome already has)."""

    def warning(self, pod: PodIdentity, reason: str, message: str) -> None:
        """Queue a Warning event; never blocks the caller, never raises. ``message`` is already
        vetted (an AgentError message) and carries no secret material."""
        ...

    def normal(self, pod: PodIdentity, reason: str, message: str) -> None:
        """Queue a Normal event (e.g. ``SecretRotationComplete``, ``MountRotationComplete``);
        same rules as ``warning``."""
        ...


class ServiceAccountTokenMinter(Protocol):
    """Mints a service-account token bound to a pod (``serviceaccounts/token``), for a later
    fetch when kubelet has not sent a fresh one."""

    async def mint(self, pod: PodIdentity, audience: str) -> ServiceAccountToken:
        """Raise an AgentError when the token cannot be had."""
        ...


class ChangeListener(Protocol):
    """Told when a SecretProviderClass or a pod on this node was created or edited
    (Kubernetes: the informers' events; standalone: classes re-read from the directory).

    ``old`` is None at first sight (a start, a relist): there is nothing to compare with.
    Called on the event loop; must not block or raise.
    """

    def class_changed(self, old: SecretProviderClass | None, new: SecretProviderClass) -> None: ...

    def pod_changed(self, old: PodInfo | None, new: PodInfo) -> None: ...


class PodStatusStore(Protocol):
    """SecretProviderClassPodStatus objects (upstream §6). Informational: recovery rebuilds the
    mount table from the volumes and their metadata and rewrites statuses from it."""

    async def upsert(self, status: PodStatus) -> None:
        """Queue ``status``; it is written behind the caller (coalesced, retried on failure).
        StatusError at once for a name the store cannot hold."""
        ...

    async def delete(self, namespace: str, name: str) -> None:
        """Remove the status; a queued write of it never lands afterwards."""
        ...

    async def load_all(self) -> list[PodStatus]:
        """Every status this node wrote; used to rebuild the mount table after a restart."""
        ...


# The check of a first publish: when the class source re-reads files (standalone manifests),
# that re-read and the mount-point inspection (``ports_volumes.BlockingInspector``), one after
# the other in one hop: the store's hop when the provider could be asked first
# (``agent.core.first_publish``), else a hop of its own.


@runtime_checkable
class BlockingClassReader(Protocol):
    """A ``SecretProviderClassSource`` whose refresh is file-system work, split in two: the read
    (any worker thread; returns what it read) and the lookup in it (on the event loop, which
    installs the read unless a newer one was installed meanwhile, then re-reads)."""

    def read_blocking(self) -> object: ...

    async def get_read(self, read: object, namespace: str, name: str) -> SecretProviderClass:
        """As ``SecretProviderClassSource.get``, answered from ``read``."""
        ...

    def read_holds(self, read: object, spc: SecretProviderClass) -> bool:
        """True when ``read`` still holds ``spc`` as ``CachedClassSource.cached`` gave it (the
        same class, or one equal to it). Any worker thread; no I/O."""
        ...

    def install(self, read: object) -> None:
        """On the event loop: install ``read`` unless a newer read was installed since (then
        nothing); never reads again. ``get_read`` without the lookup."""
        ...


@runtime_checkable
class CachedClassSource(Protocol):
    """A ``SecretProviderClassSource`` that can answer from what it already holds, without I/O:
    the informer's cache (Kubernetes mode), the manifests as last read (standalone)."""

    def cached(self, namespace: str, name: str) -> SecretProviderClass | None:
        """The class as held now; None when only ``get`` can tell (not held, unusable, not
        read yet)."""
        ...


class PublishObserver(Protocol):
    """Receives the outcome of every publish/unpublish (metrics). Labels are names, never values."""

    def publish_succeeded(self, provider: str, seconds: float) -> None: ...

    def publish_failed(self, provider: str, error_type: str, seconds: float) -> None: ...

    def remount_done(self, provider: str, rotated: bool, error_type: str, seconds: float) -> None:
        """A republish that refetched (rotation); ``error_type`` is set when it failed (masked)."""
        ...

    def unpublish_succeeded(self) -> None: ...

    def unpublish_failed(self) -> None: ...


class RotationObserver(Protocol):
    """Receives the rotation scheduler's outcomes (metrics). Labels are names, never values."""

    def rotation_succeeded(self, provider: str, rotated: bool, seconds: float) -> None:
        """One volume rotated (``rotated``: its files changed) in ``seconds``."""
        ...

    def rotation_failed(self, provider: str, error_type: str, rotated: bool = False) -> None: ...

    def rotation_fetched(self, provider: str, volumes: int) -> None:
        """One provider fetch served ``volumes`` volumes (``volumes - 1`` fetches saved)."""
        ...

    def provider_backoff(self, provider: str, seconds: float) -> None:
        """The provider is throttled for ``seconds`` (0: no longer)."""
        ...

    def volumes_due(self, count: int) -> None:
        """Volumes due for rotation at the last pass (dispatched or waiting)."""
        ...
