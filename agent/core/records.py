"""The non-secret JSON form of a mount-table record, kept beside each volume."""

from __future__ import annotations

from collections.abc import Mapping

from agent.model import ObjectVersion, PodIdentity, VolumeRecord


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
        )
    except (KeyError, TypeError, ValueError):
        return None
