"""A mount-table record's other forms: its pod status, and the non-secret JSON kept beside it."""

from __future__ import annotations

from collections.abc import Mapping

from agent.core.publish_request import MOUNT_GROUP_MAX
from agent.model import ObjectVersion, PodIdentity, PodStatus, VolumeRecord, pod_status_name


def status_of(record: VolumeRecord, node_name: str) -> PodStatus:
    """The SecretProviderClassPodStatus that describes a mounted volume (upstream §6)."""
    pod = record.pod
    return PodStatus(
        name=pod_status_name(pod.name, pod.namespace, record.spc_name),
        namespace=pod.namespace,
        pod_name=pod.name,
        pod_uid=pod.uid,
        spc_name=record.spc_name,
        target_path=record.target_path,
        node_name=node_name,
        mounted=True,
        objects=tuple(sorted(record.versions, key=lambda v: v.id)),
    )


def record_to_metadata(record: VolumeRecord) -> dict[str, object]:
    """Everything needed to resume the volume after a restart; tokens deliberately left out."""
    return {
        "target_path": record.target_path,
        "volume_id": record.volume_id,
        "pod": {
            "namespace": record.pod.namespace,
            "name": record.pod.name,
            "uid": record.pod.uid,
            "service_account": record.pod.service_account,
        },
        "spc_name": record.spc_name,
        "provider": record.provider,
        "versions": [{"id": v.id, "version": v.version} for v in record.versions],
        "mounted_at": record.mounted_at,
        "updated_at": record.updated_at,
        "mount_group": record.mount_group,
    }


def record_from_metadata(document: Mapping[str, object]) -> VolumeRecord | None:
    try:
        pod = document["pod"]
        versions = document.get("versions") or []
        if not isinstance(pod, Mapping) or not isinstance(versions, list):
            return None
        return VolumeRecord(
            target_path=str(document["target_path"]),
            volume_id=str(document["volume_id"]),
            pod=PodIdentity(
                namespace=str(pod["namespace"]),
                name=str(pod["name"]),
                uid=str(pod["uid"]),
                service_account=str(pod.get("service_account", "")),
            ),
            spc_name=str(document["spc_name"]),
            provider=str(document["provider"]),
            versions=tuple(ObjectVersion(str(v["id"]), str(v["version"])) for v in versions),
            mounted_at=float(str(document.get("mounted_at", 0.0))),
            updated_at=float(str(document.get("updated_at", 0.0))),
            mount_group=_group(document.get("mount_group")),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _group(value: object) -> int | None:
    """A saved group, or None: absent (an older agent's, or upstream's volume, which
    kubelet's next republish gives it) or not a group ID (never a group a pod did not ask for)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MOUNT_GROUP_MAX:
        return value
    return None
