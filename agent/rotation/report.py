"""What a rotation tells the world: metrics, pod events (upstream's reasons) and log lines.

Events go on each volume's pod, as upstream ≤1.5 did: ``MountRotationComplete`` (Normal) when
the files changed, ``MountRotationFailed`` (Warning) when a rotation failed; none when nothing
changed. Messages carry names and vetted error text, never content. In standalone mode there
is no event sink; the log lines say the same.
"""

from __future__ import annotations

import structlog

from agent.errors import AgentError, safe_message
from agent.fixes import fix_fields
from agent.model import VolumeRecord
from agent.ports import PodEventSink, RotationObserver

log = structlog.get_logger("agent.rotation")

MOUNT_ROTATION_COMPLETE = "MountRotationComplete"
MOUNT_ROTATION_FAILED = "MountRotationFailed"


def error_type(error: BaseException) -> str:
    return error.reason if isinstance(error, AgentError) else "FailedToRotate"


class RotationReport:
    def __init__(self, observer: RotationObserver, events: PodEventSink | None) -> None:
        self._observer = observer
        self._events = events

    def fetched(self, provider: str, spc: str, volumes: int, due: int, seconds: float) -> None:
        self._observer.rotation_fetched(provider, volumes)
        log.debug(
            "rotation.fetched",
            provider=provider,
            spc=spc,
            volumes=volumes,
            due=due,
            duration_ms=round(seconds * 1000, 2),
        )

    def rotated(self, record: VolumeRecord, changed: bool, seconds: float) -> None:
        self._observer.rotation_succeeded(record.provider, changed, seconds)
        if not changed:
            return
        pod = record.pod
        log.info("rotation.rotated", **_context(record), duration_ms=round(seconds * 1000, 2))
        if self._events is not None:
            message = (
                f"successfully rotated mounted contents for spc {pod.namespace}/{record.spc_name}"
            )
            self._events.normal(pod, MOUNT_ROTATION_COMPLETE, message)

    def failed(
        self, record: VolumeRecord, error: BaseException, retry_at: float | None, now: float
    ) -> None:
        reason, text = error_type(error), safe_message(error)
        self._observer.rotation_failed(record.provider, reason)
        pod = record.pod
        log.warning(
            "rotation.failed",
            **_context(record),
            reason=reason,
            error=text,
            **fix_fields(reason, text),
            retry_in_s=round(retry_at - now, 1) if retry_at is not None else None,
        )
        if self._events is not None:
            provider = f" (provider {record.provider})" if record.provider else ""
            message = (
                f"failed to rotate mounted contents for spc {pod.namespace}/{record.spc_name}"
                f"{provider}: {text}"
            )
            self._events.warning(pod, MOUNT_ROTATION_FAILED, message)


def _context(record: VolumeRecord) -> dict[str, str]:
    """The stable keys of every rotation log line about one volume."""
    return {
        "pod": record.pod.name,
        "namespace": record.pod.namespace,
        "spc": record.spc_name,
        "provider": record.provider,
        "target_path": record.target_path,
    }
