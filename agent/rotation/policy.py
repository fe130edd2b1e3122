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

from agent.aio.backoff import BackoffPolicy
from agent.config import parse_duration
from agent.model import (
    FETCH_PER_POD_ANNOTATION,
    REFRESH_NOW_ANNOTATION,
    ROTATION_POLL_INTERVAL_ANNOTATION,
    SecretProviderClass,
)


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


@dataclass(frozen=True, slots=True)
class ClassInterval:
    """A class's rotation interval in seconds and, when its annotation was not used as
    written, why: ``invalid`` is the parse error (the flag's interval is used), ``asked`` the
    annotation's value when it was raised to ``--rotation-min-poll-interval``."""

    seconds: float
    annotation: str | None = None  # the annotation's value as written
    invalid: str | None = None
    asked: float | None = None


def class_interval(spc: SecretProviderClass, settings: RotationSettings) -> ClassInterval:
    """The class's rotation interval: its annotation (floored), else the flag's. Pure: what
    is wrong with the annotation is told once per class version (``notices``)."""
    raw = spc.annotations.get(ROTATION_POLL_INTERVAL_ANNOTATION)
    if raw is None:
        return ClassInterval(settings.interval)
    try:
        seconds = parse_duration(raw.strip())
    except ValueError as err:
        return ClassInterval(settings.interval, raw, invalid=str(err))
    if seconds < settings.min_interval:
        return ClassInterval(settings.min_interval, raw, asked=seconds)
    return ClassInterval(seconds, raw)


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
