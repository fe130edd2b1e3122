"""The Protocols the core talks to. Adapters (fs/, providers/, standalone/, k8s/) implement them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from agent.model import (
    MountResult,
    OwnerReference,
    PodIdentity,
    PodInfo,
    PodStatus,
    ProviderRequest,
    SecretFile,
    SecretObject,
    SecretProviderClass,
    ServiceAccountToken,
    VolumeRecord,
    VolumeState,
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
    def write_blocking(self, target: str, files: Sequence[SecretFile]) -> bool: ...


@runtime_checkable
class BlockingMetadataStore(Protocol):
    def save_blocking(self, target: str, document: Mapping[str, object]) -> None: ...


# The check of a first publish: the mount-point inspection and, when the class source re-reads
# files (standalone manifests), that re-read, one after the other in one hop: the store's hop
# when the provider could be asked first (``agent.core.first_publish``), else a hop of its own.


@runtime_checkable
class BlockingInspector(Protocol):
    def inspect_blocking(self, target: str) -> VolumeState | None: ...


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


class SecretSync(Protocol):
    """Mirrors a mounted volume's files into Kubernetes Secrets, as its SecretProviderClass's
    ``spec.secretObjects`` ask (upstream §7). Kubernetes mode only; standalone mode has none.

    Callers: publish after a successful first mount (in the background: publish never waits
    on Secret writes), the rotation scheduler after a rotation that changed content, and the
    periodic re-sync. Neither method raises for a sync failure: failures become Warning events
    on the pod (``FailedToCreateSecret``, ``SecretRotationFailed``) and log lines.
    """

    async def volume_written(self, record: VolumeRecord, spc: SecretProviderClass) -> None:
        """Create or update the Secrets ``spc`` names from the files now in
        ``record.target_path``, with this volume's pod among their owners. Returns when done
        (or given up until the next re-sync); cancellation is the only exception it lets out.
        """
        ...

    async def volume_removed(self, record: VolumeRecord) -> None:
        """The volume is gone (unpublished, or its pod released): this consumer no longer holds
        the Secrets it synced; one no consumer holds any more is deleted. Never raises."""
        ...


class SecretStore(Protocol):
    """Kubernetes Secrets for secret sync, with optimistic concurrency: ``update`` and
    ``delete`` apply only to the version that was read, so two nodes syncing one Secret never
    overwrite each other's owner references. Failures raise KubernetesApiError subclasses
    (ApiConflict when the Secret changed since it was read, ApiAlreadyExists on create,
    ApiForbidden with a hint at the RBAC setting that grants access)."""

    async def read(self, namespace: str, name: str) -> SecretObject | None:
        """The Secret, or None when it does not exist."""
        ...

    async def managed_in(self, namespace: str) -> list[SecretObject]:
        """Every Secret of the namespace that carries the managed label."""
        ...

    async def create(self, secret: SecretObject) -> None: ...

    async def update(self, current: SecretObject, wanted: SecretObject) -> SecretObject:
        """Change ``current`` (as read) into ``wanted``: type, data, owners exactly; labels and
        annotations ``wanted`` has are set, others left as they are. Returns the Secret as
        the API now holds it (its new ``resource_version``)."""
        ...

    async def delete(self, current: SecretObject) -> None:
        """Delete the Secret if it is still the version read; already gone is fine."""
        ...


class SecretConsumers(Protocol):
    """Who mounts a volume for which pod, cluster-wide: what secret sync needs to decide
    whether an owner reference on a Secret is still needed by another consumer (Kubernetes
    mode; upstream §7's Patcher reads the same objects). Reads raise KubernetesApiError."""

    async def status_reference(self, namespace: str, name: str) -> OwnerReference | None:
        """This node's SecretProviderClassPodStatus ``name`` as an owner reference, once the
        write queued for it has reached the API (waits a bounded time for it; no API call).
        None when it does not exist (not written yet, its write failed, or it was deleted)."""
        ...

    def status_pending(self, namespace: str, name: str) -> bool:
        """A write of this node's status ``name`` is still queued or in flight (no API call):
        ``status_reference`` gave up waiting for it, and ``on_status_settled`` will tell."""
        ...

    def on_status_settled(self, listener: Callable[[str, str], None]) -> None:
        """Call ``listener(namespace, name)`` each time the writes queued for one of this
        node's statuses have all been applied (landed, or given up); it must not block."""
        ...

    async def pod_statuses(self, namespace: str) -> list[PodStatus]:
        """Every SecretProviderClassPodStatus of the namespace, from every node (one list)."""
        ...

    def cached_pod(self, namespace: str, name: str) -> PodInfo | None:
        """The pod from this node's pod cache (no API call); None when not cached."""
        ...

    async def read_pod(self, namespace: str, name: str) -> PodInfo | None:
        """The pod from the API (one GET); None when it does not exist."""
        ...

    async def list_pods(self, namespace: str) -> list[PodInfo]:
        """Every pod of the namespace (one list, paged)."""
        ...


class SecretSyncObserver(Protocol):
    """Outcomes of secret sync (metrics). Labels are names, never values."""

    def secrets_synced(self, provider: str, count: int, seconds: float) -> None:
        """One volume's sync: ``count`` Secrets now match their files, in ``seconds``."""
        ...

    def secret_sync_failed(self, provider: str, error_type: str) -> None:
        """One Secret (or secretObjects entry) that could not be synced."""
        ...


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
