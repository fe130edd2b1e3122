"""The ports of secret sync (upstream §7): mirroring a volume's files into Kubernetes Secrets,
the Secrets themselves, who else consumes them, and the sync's metrics. Kubernetes mode only
(agent/k8s and agent/sync implement them); the other ports are in agent/ports.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from agent.model import (
    OwnerReference,
    PodInfo,
    PodStatus,
    SecretObject,
    SecretProviderClass,
    VolumeRecord,
)


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
