"""Who keeps a synced Secret alive: owner references to the consumers' owners (upstream §7).

Semantics (issue 8 item 4; docs/secret-sync.md "Who keeps a Secret alive"):

- A consumer is a pod mounting a volume whose class names the Secret. It adds a reference
  to each of its pod's owners, copied as upstream's Patcher copies them (``apiVersion``,
  ``kind``, ``name``, ``uid``; never ``controller``, which plays no part in garbage
  collection and which a Secret shared by several owners cannot honestly claim), or, for a
  pod without owners, to its pod's SecretProviderClassPodStatus (owned by the pod itself, so
  the Secret goes with it).
- When a consumer goes, each of its references is removed unless another live consumer, on
  any node, still holds it (``holders``); the Secret is deleted with its last reference.
  Unlike upstream, which only ever adds, a Deployment scaled to zero loses its Secret
  (upstream #1770), while a scale-down keeps it for the pods left (#2051).
- References nobody here added (a user's) are never removed and keep the Secret alive.
  A ``v1 Pod`` reference to a consumer's own pod is what this agent added before it
  followed upstream: the pod's next sync replaces it by its owners, and it goes with the pod.

Pure functions; ``apply`` and ``release`` apply them to what they read.
"""

from __future__ import annotations

from collections.abc import Iterable

from agent.documents.pod_status import KIND as POD_STATUS_KIND
from agent.model import OwnerReference, PodInfo

POD_API_VERSION = "v1"
POD_KIND = "Pod"


def consumer_owners(pod: PodInfo, status: OwnerReference | None) -> tuple[OwnerReference, ...]:
    """The references one consumer adds: its pod's owners (as upstream copies them), else its
    status object; empty when a bare pod's status is not known to exist yet."""
    if pod.owners:
        return tuple(
            OwnerReference(ref.api_version, ref.kind, ref.name, ref.uid)
            for ref in _unique(pod.owners)
        )
    return (status,) if status is not None else ()


def with_owners(
    owners: Iterable[OwnerReference], adding: Iterable[OwnerReference], pod_uid: str
) -> tuple[OwnerReference, ...]:
    """``owners`` plus each of ``adding`` not already there (by uid), without the consumer
    pod's own legacy reference. A reference of the same group, kind and name as one added but
    another uid goes: its object was replaced (two cannot exist at once), so it dangles."""
    result = [ref for ref in owners if not is_pod_reference(ref, pod_uid)]
    for ref in adding:
        if any(kept.uid == ref.uid for kept in result):
            continue
        result = [kept for kept in result if not _same_object_name(kept, ref)]
        result.append(ref)
    return tuple(result)


def without(owners: Iterable[OwnerReference], uids: Iterable[str]) -> tuple[OwnerReference, ...]:
    gone = set(uids)
    return tuple(ref for ref in owners if ref.uid not in gone)


def is_pod_reference(ref: OwnerReference, pod_uid: str) -> bool:
    """A reference to the pod itself: how this agent kept Secrets before (legacy)."""
    return ref.kind == POD_KIND and ref.api_version == POD_API_VERSION and ref.uid == pod_uid


def is_status_reference(ref: OwnerReference, status_name: str) -> bool:
    return ref.kind == POD_STATUS_KIND and ref.name == status_name


def _same_object_name(a: OwnerReference, b: OwnerReference) -> bool:
    return (
        a.kind == b.kind
        and a.name == b.name
        and _group(a.api_version) == _group(b.api_version)
        and a.uid != b.uid
    )


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def _unique(refs: Iterable[OwnerReference]) -> list[OwnerReference]:
    seen: set[str] = set()
    unique = []
    for ref in refs:
        if ref.uid not in seen:
            seen.add(ref.uid)
            unique.append(ref)
    return unique
