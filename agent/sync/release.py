"""One consumer lets go of one Secret: its references go unless another live consumer still
holds them, and the Secret goes with its last reference.

Agents of several nodes add and remove references on one Secret at once. Writes carry the
``resourceVersion`` read (a Conflict is read again and decided again), but a consumer that
finds its reference already there writes nothing, so a precondition alone cannot stop a
removal from taking a reference a new consumer just counted on. Two rules close that gap:

1. a consumer's status object exists before its sync reads the Secret (``syncer``);
2. after removing references, the remover lists the statuses again: a consumer that appeared
   since its first census, and holds a removed reference, gets it back. A new consumer the
   second census does not see read the Secret after the removal, so it adds its own.

Deleting goes the same way: the last references are removed first (the Secret stays, with
no owner), the second census runs, and only then is the Secret deleted, conditional on the
version the removal left, so a consumer that re-added a reference meanwhile wins.

API calls (docs/secret-sync.md has the table): none of the consumer's references on the
Secret: 1 (GET). Held by another consumer: GET and a list of statuses, plus pod reads for
other nodes' pods (``holders``). Removed: GET, list, PATCH, list again (+ pod reads), and
DELETE when it was the last. A bare pod's status reference needs no census: GET, then PATCH,
or DELETE when it was the last.
"""

from __future__ import annotations

import enum
from dataclasses import replace

import structlog

from agent.errors import ApiConflict, ApiNotFound, KubernetesApiError
from agent.model import OwnerReference, SecretObject
from agent.ports_sync import SecretStore
from agent.sync.apply import ATTEMPTS, Outcome, TooManyConflicts
from agent.sync.holders import Census, Holders, Leaving, uids_of
from agent.sync.owners import is_pod_reference, is_status_reference, with_owners, without

log = structlog.get_logger("agent.sync")


class _Again(enum.Enum):
    READ = "read"  # a write lost a race: read and decide again
    DELETE = "delete"  # emptied, but the delete lost a race: delete again if still empty


class SecretRelease:
    def __init__(self, store: SecretStore, holders: Holders) -> None:
        self._store = store
        self._holders = holders

    async def release(self, leaving: Leaving, name: str, owned: frozenset[str]) -> Outcome:
        """Remove the references with uids in ``owned`` (and the leaving pod's own legacy
        one) that no other live consumer holds; delete the Secret when none is left. A Secret
        without the managed label is never touched. Raises KubernetesApiError."""
        emptied = False
        for _ in range(ATTEMPTS):
            current = await self._store.read(leaving.namespace, name)
            if current is None:
                return Outcome.ABSENT
            if not current.managed:
                return Outcome.NOT_MANAGED
            if emptied and current.owners:
                return Outcome.OWNERS_CHANGED  # a consumer added itself meanwhile: it stays
            if emptied:
                result = await self._delete(current)
            else:
                result = await self._decide(leaving, current, owned)
            if not isinstance(result, _Again):
                return result
            emptied = result is _Again.DELETE
        raise TooManyConflicts(
            f"secret {leaving.namespace}/{name} kept changing while it was being released"
        )

    async def _decide(
        self, leaving: Leaving, current: SecretObject, owned: frozenset[str]
    ) -> Outcome | _Again:
        mine = [
            ref
            for ref in current.owners
            if ref.uid in owned or is_pod_reference(ref, leaving.pod_uid)
        ]
        if not mine:
            return Outcome.UNCHANGED
        census = await self._holders.census(leaving, current.name, _shared(mine, leaving))
        dropped = [ref for ref in mine if ref.uid not in census.held]
        if not dropped:
            return Outcome.UNCHANGED
        return await self._remove(leaving, current, dropped, census)

    async def _remove(
        self, leaving: Leaving, current: SecretObject, dropped: list[OwnerReference], first: Census
    ) -> Outcome | _Again:
        """Remove ``dropped``; give back what a consumer that came meanwhile holds; delete
        the Secret if no reference is left."""
        remaining = without(current.owners, uids_of(dropped))
        if not remaining and not _shared(dropped, leaving):
            return await self._delete(current)  # nobody else could count on these: no recount
        try:
            updated = await self._store.update(current, replace(current, owners=remaining))
        except ApiConflict:
            return _Again.READ
        except ApiNotFound:
            return Outcome.ABSENT
        late = await self._late_holders(leaving, current.name, dropped, first)
        if late:
            await self._restore(updated, late)
            return Outcome.OWNERS_CHANGED
        if updated.owners:
            return Outcome.OWNERS_CHANGED
        return await self._delete(updated)

    async def _late_holders(
        self, leaving: Leaving, name: str, dropped: list[OwnerReference], first: Census
    ) -> list[OwnerReference]:
        """The removed references a consumer that appeared since ``first`` holds."""
        shared = _shared(dropped, leaving)
        if not shared:
            return []
        try:
            late = await self._holders.census(leaving, name, shared, skip=first.seen)
        except KubernetesApiError as err:
            # Go on as if none came: one that did adds its reference at its next sync.
            log.warning("secret_sync.recount_failed", secret_name=name, error=err.message)
            return []
        return [ref for ref in shared if ref.uid in late.held]

    async def _restore(self, current: SecretObject, refs: list[OwnerReference]) -> None:
        """Put ``refs`` back; an absent Secret is created by the late consumer's own sync."""
        secret: SecretObject | None = current
        for _ in range(ATTEMPTS):
            if secret is None or not secret.managed:
                return
            try:
                owners = with_owners(secret.owners, refs, "")
                await self._store.update(secret, replace(secret, owners=owners))
                return
            except ApiConflict:
                secret = await self._store.read(current.namespace, current.name)
            except ApiNotFound:
                return
        raise TooManyConflicts(f"secret {current.ref} kept changing while it was being restored")

    async def _delete(self, current: SecretObject) -> Outcome | _Again:
        """Delete the owner-less Secret if it is still the version read."""
        try:
            await self._store.delete(current)
        except ApiConflict:
            return _Again.DELETE
        return Outcome.DELETED


def _shared(refs: list[OwnerReference], leaving: Leaving) -> list[OwnerReference]:
    """The references another consumer could hold: not the leaving pod's own status object
    nor its legacy reference to itself."""
    return [
        ref
        for ref in refs
        if not is_pod_reference(ref, leaving.pod_uid)
        and not is_status_reference(ref, leaving.status_name)
    ]
