"""When each mounted volume is next due.

A volume is due ``interval * (1 + jitter)`` after its last fetch (``VolumeRecord.updated_at``,
so the schedule survives a restart), where the interval is its class's (learned from class
events and rotations; the flag's until then) and the jitter a fixed per-volume fraction of
``settings.jitter``. Two things move a volume's time: a refresh-now request (due now, but
never sooner than ``min_interval`` after its last fetch) and a failed rotation (retried after
an exponential, jittered delay, capped at the larger of its interval and the policy's
maximum; the first retry comes after the policy's initial delay or the interval,
whichever is shorter). Only volumes with such an override or a failure count hold state here.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from agent.model import SecretProviderClass, VolumeRecord
from agent.rotation.policy import RotationSettings, class_interval, jitter_fraction

MAX_CLASSES = 4096  # intervals remembered (least recently used dropped first)


@dataclass(slots=True)
class _Override:
    due_at: float
    failures: int = 0


class Schedule:
    def __init__(self, settings: RotationSettings, rng: random.Random | None = None) -> None:
        self._settings = settings
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not secrets)
        self._overrides: dict[str, _Override] = {}
        self._intervals: OrderedDict[tuple[str, str], float] = OrderedDict()

    # ---- classes ----

    def learn_class(self, spc: SecretProviderClass) -> bool:
        """Remember the class's interval; True when it changed."""
        key, interval = (spc.namespace, spc.name), class_interval(spc, self._settings).seconds
        previous = self._intervals.get(key)
        self._intervals[key] = interval
        self._intervals.move_to_end(key)
        while len(self._intervals) > MAX_CLASSES:
            self._intervals.popitem(last=False)
        return previous is not None and previous != interval

    def interval(self, record: VolumeRecord) -> float:
        key = (record.pod.namespace, record.spc_name)
        return self._intervals.get(key, self._settings.interval)

    # ---- volumes ----

    def due_at(self, record: VolumeRecord) -> float:
        override = self._overrides.get(record.target_path)
        if override is not None:
            return override.due_at
        jitter = self._settings.jitter * jitter_fraction(record.target_path)
        return record.updated_at + self.interval(record) * (1.0 + jitter)

    def request_now(self, record: VolumeRecord, now: float) -> float:
        """Refresh-now: due now, or once ``min_interval`` has passed since the last fetch."""
        due = max(now, record.updated_at + self._settings.min_interval)
        current = self._overrides.get(record.target_path)
        if current is None:
            self._overrides[record.target_path] = _Override(due)
            return due
        current.due_at = min(current.due_at, due)  # an earlier request (or retry) stands
        return current.due_at

    def succeeded(self, target_path: str) -> None:
        self._overrides.pop(target_path, None)

    def failed(self, record: VolumeRecord, now: float) -> float:
        """A rotation of ``record`` failed; returns when it is tried again."""
        current = self._overrides.get(record.target_path)
        failures = current.failures if current is not None else 0
        policy = self._settings.failure_backoff
        ceiling = max(self.interval(record), policy.maximum)
        start = min(policy.initial, self.interval(record))  # a short interval retries sooner
        delay = min(ceiling, start * policy.factor**failures)
        delay *= 1.0 - policy.jitter * self._rng.random()
        self._overrides[record.target_path] = _Override(now + delay, failures + 1)
        return now + delay

    def failures(self, target_path: str) -> int:
        override = self._overrides.get(target_path)
        return override.failures if override is not None else 0

    def prune(self, live: Iterable[str]) -> None:
        """Forget volumes that left the mount table (flat memory under pod churn)."""
        keep = set(live)
        for target in [t for t in self._overrides if t not in keep]:
            del self._overrides[target]
