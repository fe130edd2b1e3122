"""Bring one Secret to what sync wants against a ``SecretStore`` (letting go: ``release``).

Read, decide, write the version read (create; merge patch with ``resourceVersion``; delete
with preconditions); on Conflict or AlreadyExists another writer (usually the agent of another
node adding its consumer's references) got there first: read again and decide again. Only a
Secret with the managed label is ever changed or deleted: a user's own Secret of the same name
is left alone and reported. Adding references reads nothing beyond the Secret itself: the
owners come from the pod cache (``owners``).
"""

from __future__ import annotations

import enum
from dataclasses import replace

from agent.errors import ApiConflict, ApiNotFound, KubernetesApiError
from agent.model import MANAGED_LABEL, OwnerReference, SecretObject
from agent.ports_sync import SecretStore
from agent.sync.owners import with_owners

ATTEMPTS = 5


class Outcome(enum.Enum):
    CREATED = "created"
    UPDATED = "updated"  # type or data changed
    OWNERS_CHANGED = "owners_changed"  # only owners, labels or annotations changed
    UNCHANGED = "unchanged"
    NOT_MANAGED = "not_managed"  # a Secret of that name without the managed label exists
    DELETED = "deleted"
    ABSENT = "absent"  # nothing to let go of


class TooManyConflicts(ApiConflict):
    """The Secret kept changing under us; the next re-sync tries again."""


class WriteFailed(Exception):
    """``ensure_secret`` could not write; ``existed`` tells a failed rotation of an existing
    Secret from a failed creation (upstream's event reasons differ)."""

    def __init__(self, error: KubernetesApiError, *, existed: bool) -> None:
        super().__init__(error.message)
        self.error = error
        self.existed = existed


async def ensure_secret(
    store: SecretStore, wanted: SecretObject, owners: tuple[OwnerReference, ...], pod_uid: str
) -> tuple[Outcome, SecretObject | None]:
    """Create or update ``wanted`` (its labels already carry the managed label) with
    ``owners`` (one consumer's, whose pod is ``pod_uid``) among its owners. Returns the
    outcome and the Secret as it was before; raises WriteFailed."""
    current: SecretObject | None = None
    try:
        return await _ensure(store, wanted, owners, pod_uid)
    except KubernetesApiError as err:
        try:
            current = await store.read(wanted.namespace, wanted.name)
        except KubernetesApiError:
            current = None
        raise WriteFailed(err, existed=current is not None) from None


async def _ensure(
    store: SecretStore, wanted: SecretObject, owners: tuple[OwnerReference, ...], pod_uid: str
) -> tuple[Outcome, SecretObject | None]:
    for _ in range(ATTEMPTS):
        current = await store.read(wanted.namespace, wanted.name)
        try:
            if current is None:
                await store.create(replace(wanted, owners=owners))
                return Outcome.CREATED, None
            if not current.managed:
                return Outcome.NOT_MANAGED, current
            desired = _desired(current, wanted, with_owners(current.owners, owners, pod_uid))
            if desired == current:
                return Outcome.UNCHANGED, current
            if _needs_recreate(current, desired):
                # Type (and data of an immutable Secret) cannot change in place.
                await store.delete(current)
                await store.create(replace(desired, resource_version="", uid=""))
                return Outcome.UPDATED, current
            await store.update(current, desired)
        except (ApiConflict, ApiNotFound):
            continue  # includes AlreadyExists: someone else wrote it first
        changed = desired.type != current.type or desired.data != current.data
        return (Outcome.UPDATED if changed else Outcome.OWNERS_CHANGED), current
    raise TooManyConflicts(f"secret {wanted.ref} kept changing while it was being synced")


def _desired(
    current: SecretObject, wanted: SecretObject, owners: tuple[OwnerReference, ...]
) -> SecretObject:
    return replace(
        current,
        type=wanted.type,
        data=dict(wanted.data),
        labels={**current.labels, **wanted.labels},
        annotations={**current.annotations, **wanted.annotations},
        owners=owners,
    )


def _needs_recreate(current: SecretObject, desired: SecretObject) -> bool:
    return current.type != desired.type or (current.immutable and current.data != desired.data)


def managed_labels(labels: dict[str, str]) -> dict[str, str]:
    """A synced Secret's labels: the class's, plus upstream's managed label."""
    return {**labels, MANAGED_LABEL: "true"}
