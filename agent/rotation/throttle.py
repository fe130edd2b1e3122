"""Per-provider backoff for a store that throttles (upstream #1483: a 429 storm with no backoff).

When a provider raises ProviderThrottled, no group of that provider is fetched until its delay
has passed (exponential, jittered, at least the store's Retry-After); then a single fetch
probes it, and only an answer that is not a throttle reopens the provider to everyone. Other
providers are never affected. Fetches that were already running when the throttling started
do not escalate the delay again when they fail the same way.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.aio.backoff import Backoff, BackoffPolicy


@dataclass(frozen=True, slots=True)
class Claim:
    """Permission for one fetch: when it started, and whether it is the probe."""

    provider: str
    started: float
    probe: bool = False


@dataclass(slots=True)
class _Throttled:
    backoff: Backoff
    since: float = 0.0  # when the current delay was imposed
    until: float = 0.0  # no fetch starts before this
    probing: bool = False  # one fetch is testing the provider


@dataclass
class ProviderThrottle:
    policy: BackoffPolicy
    on_change: Callable[[str, float], None] = lambda provider, delay: None
    rng: random.Random = field(default_factory=random.Random)
    _states: dict[str, _Throttled] = field(default_factory=dict)

    def wait_until(self, provider: str, now: float) -> float | None:
        """None when the provider may be tried now; else when to look again (``now`` itself
        while a probe runs: its end decides, and wakes the scheduler)."""
        state = self._states.get(provider)
        if state is None:
            return None
        if state.probing:
            return now
        return state.until if now < state.until else None

    def claim(self, provider: str, now: float) -> Claim | None:
        """Permission to fetch; while throttled, only the first caller after the delay."""
        state = self._states.get(provider)
        if state is None:
            return Claim(provider, now)
        if state.probing or now < state.until:
            return None
        state.probing = True
        return Claim(provider, now, probe=True)

    def throttled(self, claim: Claim, now: float, retry_after: float | None) -> float:
        """The fetch was throttled; returns the delay in force from ``now``."""
        state = self._states.get(claim.provider)
        if state is None:
            state = self._states[claim.provider] = _Throttled(Backoff(self.policy, self.rng))
        elif not claim.probe and claim.started < state.since:
            return max(state.until - now, 0.0)  # a straggler from before the delay began
        delay = state.backoff.next_delay(retry_after or 0.0)
        state.since, state.until, state.probing = now, now + delay, False
        self.on_change(claim.provider, delay)
        return delay

    def answered(self, claim: Claim) -> None:
        """The provider answered without throttling: open to everyone again."""
        if self._states.pop(claim.provider, None) is not None:
            self.on_change(claim.provider, 0.0)

    def released(self, claim: Claim) -> None:
        """The fetch ended without a verdict on throttling (an outage, a cancellation)."""
        state = self._states.get(claim.provider)
        if state is not None and claim.probe:
            state.probing = False

    def throttled_providers(self) -> list[str]:
        return sorted(self._states)
