"""One metrics update and one log line per publish, with the same keys every time."""

from __future__ import annotations

import time

import structlog

from agent.core.publish_attempt import Attempt, PublishOutcome
from agent.documents.names import shown_name
from agent.errors import (
    InvalidRequest,
    InvalidSecretProviderClass,
    KubernetesApiError,
    PayloadError,
    ProviderError,
    ProviderNotFound,
    ProviderUnavailable,
    SecretProviderClassNotFound,
)
from agent.fixes import fix_fields
from agent.model import PublishRequest
from agent.ports import PodEventSink, PublishObserver

log = structlog.get_logger("agent.publish")

_OWNER_FIXABLE = (
    SecretProviderClassNotFound,
    InvalidSecretProviderClass,
    ProviderNotFound,
    ProviderError,
    PayloadError,
    InvalidRequest,
)


def owner_can_fix(error: BaseException) -> bool:
    """A failure the pod's owner can act on (class missing or invalid, unknown provider, the
    store refusing, bad volume attributes), worth an event on the pod. Outages are not."""
    if isinstance(error, ProviderUnavailable | KubernetesApiError):
        return False
    return isinstance(error, _OWNER_FIXABLE)


def event_message(attempt: Attempt, error: str) -> str:
    """The pod event's text: which class and provider failed, then the (vetted) error.

    The pod's events are all its owner sees of a failed mount (the log line carries ``spc``
    and ``provider`` as keys), and a provider's own message ("vaultAddress: no server
    address") does not say which of the pod's volumes it is about. The class is named once:
    not again when the error already names ``namespace/name``. A name that is not a
    Kubernetes name, or a long one, is quoted and cut (``agent.documents.names.shown_name``).
    """
    ref = f"{attempt.identity.namespace}/{shown_name(attempt.spc_name)}"
    verb = "failed to refresh" if attempt.is_remount else "failed to mount"
    subject = f"spc {ref}" if ref not in error else "the volume"
    provider = f" (provider {attempt.provider})" if attempt.provider else ""
    return f"{verb} {subject}{provider}: {error}"


class PublishReport:
    def __init__(self, observer: PublishObserver, events: PodEventSink | None = None) -> None:
        self._observer = observer
        self._events = events

    def succeeded(
        self,
        request: PublishRequest,
        attempt: Attempt | None,
        outcome: PublishOutcome,
        started: float,
    ) -> None:
        seconds = time.perf_counter() - started
        if outcome.error_type:
            # A masked remount failure: kubelet is told success, but upstream counts it as an
            # error only (node_publish_error_total, never node_publish_total).
            self._observer.publish_failed(outcome.provider, outcome.error_type, seconds)
        else:
            self._observer.publish_succeeded(outcome.provider, seconds)
        if outcome.remount:
            self._observer.remount_done(
                outcome.provider, outcome.rotated, outcome.error_type, seconds
            )
        if outcome.error_type:
            if outcome.notify_owner and attempt is not None and self._events is not None:
                message = event_message(attempt, outcome.error)
                self._events.warning(attempt.identity, outcome.error_type, message)
            # Kubelet was told success (k/k#121271), the old content stays; say why here.
            log.warning(
                "node_publish.completed",
                **_context(request, attempt, started),
                outcome=outcome.action,
                reason=outcome.error_type,
                error=outcome.error,
                **fix_fields(outcome.error_type, outcome.error),
            )
            return
        log.info(
            "node_publish.completed",
            **_context(request, attempt, started),
            outcome=outcome.action,
            files=outcome.files,
        )

    def failed(
        self,
        request: PublishRequest,
        attempt: Attempt | None,
        reason: str,
        error: str,
        started: float,
        *,
        notify_owner: bool = False,
    ) -> None:
        provider = attempt.provider if attempt else ""
        if notify_owner and attempt is not None and self._events is not None:
            self._events.warning(attempt.identity, reason, event_message(attempt, error))
        self._observer.publish_failed(provider, reason, time.perf_counter() - started)
        log.warning(
            "node_publish.failed",
            **_context(request, attempt, started),
            outcome="cancelled" if reason == "Cancelled" else "failed",
            reason=reason,
            error=error,
            **fix_fields(reason, error),
        )


def _context(request: PublishRequest, attempt: Attempt | None, started: float) -> dict[str, object]:
    """The stable keys of every publish log line (upstream logs pod and target path too)."""
    return {
        "pod": attempt.identity.name if attempt else None,
        "namespace": attempt.identity.namespace if attempt else None,
        "spc": shown_name(attempt.spc_name) if attempt else None,
        "provider": attempt.provider if attempt else None,
        "target_path": request.target_path,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
    }
