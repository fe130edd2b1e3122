"""What secret sync tells the world: log lines, pod events with upstream's reasons, metrics.

Reasons (upstream §7, §8.2, §12.2): ``FailedToCreateSecret`` (Warning) for an entry, its data
or a write that failed, or a user's Secret in the way; ``SecretRotationFailed`` (Warning)
when an existing Secret could not be updated; ``SecretRotationComplete`` (Normal, "successfully
rotated K8s secret <name>") when its data changed. Messages name fields and objects, never a
value: Secret data never reaches a log line, an event or a label.
"""

from __future__ import annotations

import structlog

from agent.fixes import fix_fields
from agent.model import MANAGED_LABEL, SecretObject, VolumeRecord
from agent.ports import PodEventSink
from agent.ports_sync import SecretSyncObserver
from agent.sync.apply import Outcome

log = structlog.get_logger("agent.sync")

FAILED_TO_CREATE = "FailedToCreateSecret"
ROTATION_COMPLETE = "SecretRotationComplete"
ROTATION_FAILED = "SecretRotationFailed"


class SyncReporter:
    def __init__(
        self, events: PodEventSink | None = None, observer: SecretSyncObserver | None = None
    ) -> None:
        self.events = events
        self.observer = observer

    def failed(self, record: VolumeRecord, reason: str, error_type: str, message: str) -> None:
        pod = record.pod
        log.warning(
            "secret_sync.failed",
            pod=pod.name,
            namespace=pod.namespace,
            spc=record.spc_name,
            provider=record.provider,
            reason=reason,
            error_type=error_type,
            error=message,
            **fix_fields(error_type, message),
        )
        if self.events is not None:
            self.events.warning(pod, reason, message)
        if self.observer is not None:
            self.observer.secret_sync_failed(record.provider, error_type)

    def written(
        self,
        record: VolumeRecord,
        wanted: SecretObject,
        outcome: Outcome,
        before: SecretObject | None,
    ) -> bool:
        """Report one ``ensure_secret`` outcome; False when the Secret is not in sync."""
        pod = record.pod
        fields = {"secret_name": wanted.name, "namespace": pod.namespace, "pod": pod.name}
        if outcome is Outcome.NOT_MANAGED:
            message = (
                f"secret {wanted.ref} already exists and is not managed by secret sync (no "
                f"label {MANAGED_LABEL}=true): left unchanged"
            )
            self.failed(record, FAILED_TO_CREATE, "SecretNotManaged", message)
            return False
        if outcome is Outcome.CREATED:
            log.info("secret_sync.created", **fields, type=wanted.type)
        elif outcome is Outcome.UPDATED and before is not None:
            log.info("secret_sync.updated", **fields, keys=sorted(wanted.data))
            if self.events is not None:
                message = f"successfully rotated K8s secret {wanted.name}"
                self.events.normal(pod, ROTATION_COMPLETE, message)
        elif outcome is Outcome.OWNERS_CHANGED:
            log.info("secret_sync.owner_added", **fields)
        return True

    def released(self, record: VolumeRecord, name: str, outcome: Outcome, why: str) -> None:
        if outcome in (Outcome.DELETED, Outcome.OWNERS_CHANGED):
            pod = record.pod
            event = "secret_sync.deleted" if outcome is Outcome.DELETED else "secret_sync.released"
            log.info(event, secret_name=name, namespace=pod.namespace, pod=pod.name, why=why)

    def synced(self, record: VolumeRecord, count: int, seconds: float) -> None:
        if self.observer is not None:
            self.observer.secrets_synced(record.provider, count, seconds)
