"""Rotation settings and the per-class rules read from annotations (docs/rotation.md).

``secrets-store.csi.k8s.io/rotation-poll-interval`` on a SecretProviderClass overrides
``--rotation-poll-interval`` for its volumes (a Go duration, ``30s``, ``1h``), never below
``--rotation-min-poll-interval`` so one tenant cannot turn the agent into a load generator for
a shared store. ``secrets-store.csi.k8s.io/refresh-now`` on the class or on a pod asks for a
rotation now; only a *change* of its value does (a timestamp is the natural value), so an
annotation left in place never loops.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import structlog

from agent.aio.backoff import BackoffPolicy
from agent.config import parse_duration
from agent.model import (
    FETCH_PER_POD_ANNOTATION,
    REFRESH_NOW_ANNOTATION,
    ROTATION_POLL_INTERVAL_ANNOTATION,
    SecretProviderClass,
)

log = structlog.get_logger("agent.rotation")


@dataclass(frozen=True, slots=True)
class RotationSettings:
    """Seconds throughout. ``jitter`` spreads due times by up to that fraction of the
    interval; ``throttle_backoff`` paces a throttling provider (a store's Retry-After is
    honoured on top); ``failure_backoff`` paces retries of a group whose fetch failed, capped
    at the larger of its interval and the policy's maximum."""

    node_name: str = ""
    interval: float = 120.0
    min_interval: float = 10.0
    concurrency: int = 10
    provider_timeout: float = 90.0
    jitter: float = 0.1
    throttle_backoff: BackoffPolicy = field(
        default_factory=lambda: BackoffPolicy(initial=2.0, maximum=300.0, factor=2.0, jitter=0.5)
    )
    failure_backoff: BackoffPolicy = field(
        default_factory=lambda: BackoffPolicy(initial=10.0, maximum=300.0, factor=2.0, jitter=0.5)
    )


def class_interval(spc: SecretProviderClass, settings: RotationSettings) -> float:
    """The class's rotation interval: its annotation (floored), else the flag's."""
    raw = spc.annotations.get(ROTATION_POLL_INTERVAL_ANNOTATION)
    if raw is None:
        return settings.interval
    try:
        seconds = parse_duration(raw.strip())
    except ValueError as err:
        log.warning(
            "rotation.interval_invalid",
            spc=spc.name,
            namespace=spc.namespace,
            annotation=ROTATION_POLL_INTERVAL_ANNOTATION,
            error=str(err),
            used_s=settings.interval,
        )
        return settings.interval
    if seconds < settings.min_interval:
        log.warning(
            "rotation.interval_raised",
            spc=spc.name,
            namespace=spc.namespace,
            annotation=ROTATION_POLL_INTERVAL_ANNOTATION,
            asked_s=seconds,
            used_s=settings.min_interval,
            note="below --rotation-min-poll-interval",
        )
        return settings.min_interval
    return seconds


def refresh_request(annotations: Mapping[str, str]) -> str:
    """The refresh-now annotation's value ("" when absent)."""
    return annotations.get(REFRESH_NOW_ANNOTATION, "").strip()


def refresh_requested(old: Mapping[str, str] | None, new: Mapping[str, str]) -> bool:
    """True when the refresh-now value changed to a non-empty one (edge-triggered). ``old``
    None is a first sight (a start or a relist): nothing to compare with, no rotation."""
    if old is None:
        return False
    value = refresh_request(new)
    return bool(value) and value != refresh_request(old)


def fetches_per_pod(spc: SecretProviderClass) -> bool:
    """The class opts out of sharing fetches between pods (e.g. a Vault role bound to a
    pod-name claim: authorization that is not the service account's alone)."""
    return spc.annotations.get(FETCH_PER_POD_ANNOTATION, "").strip().lower() == "true"


def jitter_fraction(target_path: str) -> float:
    """A fixed fraction in [0, 1) per volume: due times spread the same way on every pass."""
    return (zlib.crc32(target_path.encode()) % 10_000) / 10_000
