"""Jittered exponential backoff for retry loops (watch reconnects, status writes, events).

Jitter matters here: when the API server comes back after an outage, every node's agent is
retrying; spreading their retries keeps them from arriving as one wave.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Delays in seconds: ``initial * factor**n``, capped at ``maximum``, each then drawn
    uniformly from ``[delay * (1 - jitter), delay]``."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.5


@dataclass(slots=True)
class Backoff:
    """The retry state of one loop; ``reset`` after a success."""

    policy: BackoffPolicy = field(default_factory=BackoffPolicy)
    rng: random.Random = field(default_factory=random.Random, repr=False)
    attempts: int = 0

    def next_delay(self, at_least: float = 0.0) -> float:
        """The delay before the next attempt; ``at_least`` honours a server's Retry-After."""
        policy = self.policy
        ceiling = min(policy.maximum, policy.initial * policy.factor**self.attempts)
        self.attempts += 1
        delay = ceiling * (1.0 - policy.jitter * self.rng.random())
        return max(delay, min(at_least, policy.maximum * 10))

    def reset(self) -> None:
        self.attempts = 0
