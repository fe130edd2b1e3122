"""Who keeps a synced Secret alive: one owner reference per consumer pod.

Semantics (a deliberate difference from upstream, §7 and pain points §16 item 2):

- Every pod that mounts a volume whose class syncs the Secret adds an owner reference to
  *itself* (``v1 Pod``, name, uid), and removes it when its volume goes (unpublished, or the
  pod released). The agent deletes a Secret whose last consumer reference it removed.
- Kubernetes' garbage collector deletes a dependent only once *all* its owners are gone,
  whatever ``controller`` says (the field marks the one managing controller; it is never
  set, since a Secret shared by several consumers has none, and the API allows only one).
  So a Secret lives exactly while at least one pod mounts a volume that syncs it, on any
  node, even while an agent is down; nodes never need to agree with each other, because each
  adds and removes only references to its own pods.
- Upstream points the references at the pod's owners (the ReplicaSet, StatefulSet, ...) or
  at the pod's SecretProviderClassPodStatus for a bare pod. A ReplicaSet outlives its pods,
  so a Deployment scaled to zero keeps its Secret forever (upstream #1770), and references
  are only ever added. Here a scaled-to-zero workload's Secret goes with its last pod and is
  created again by the next one's mount.
- References the agent did not add (upstream's ReplicaSet references on a Secret synced
  before the switch, or anything a user added) are kept as they are, and keep the Secret.

Pure functions; ``syncer`` applies them to what it read, with optimistic concurrency.
"""

from __future__ import annotations

from collections.abc import Iterable

from agent.model import OwnerReference, PodIdentity

POD_API_VERSION = "v1"
POD_KIND = "Pod"


def consumer_reference(pod: PodIdentity) -> OwnerReference:
    return OwnerReference(POD_API_VERSION, POD_KIND, pod.name, pod.uid)


def _is_pod(ref: OwnerReference) -> bool:
    return ref.kind == POD_KIND and ref.api_version == POD_API_VERSION


def with_consumers(
    owners: Iterable[OwnerReference], consumers: Iterable[OwnerReference]
) -> tuple[OwnerReference, ...]:
    """``owners`` plus each consumer not already there (by uid). A pod reference with a
    consumer's name but another uid goes: that pod was replaced by this one (two pods of one
    name cannot exist at once), so the old reference is dangling."""
    result = list(owners)
    for consumer in consumers:
        if any(ref.uid == consumer.uid for ref in result):
            continue
        result = [ref for ref in result if not (_is_pod(ref) and ref.name == consumer.name)]
        result.append(consumer)
    return tuple(result)


def without_consumers(
    owners: Iterable[OwnerReference], uids: Iterable[str]
) -> tuple[OwnerReference, ...]:
    gone = set(uids)
    return tuple(ref for ref in owners if not (_is_pod(ref) and ref.uid in gone))


def consumer_uids(owners: Iterable[OwnerReference]) -> frozenset[str]:
    return frozenset(ref.uid for ref in owners if _is_pod(ref))
