"""A token bucket for client-side request rate limits (client-go's QPS and burst).

Reservations, as Go's ``rate.Limiter``: each caller takes a token at once, possibly going into
debt, and sleeps until its token would have been refilled. Callers are therefore served in
arrival order without a lock, and a cancelled waiter gives its token back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class TokenBucket:
    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """``rate`` tokens per second (``<= 0``: unlimited), at most ``burst`` saved up."""
        self._rate = rate
        self._burst = float(max(burst, 1))
        self._clock = clock
        self._tokens = self._burst
        self._stamp = clock()

    @property
    def unlimited(self) -> bool:
        return self._rate <= 0

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now

    def reserve(self) -> float:
        """Take a token now; return how many seconds to wait before using it."""
        if self.unlimited:
            return 0.0
        self._refill()
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self._rate

    def try_take(self) -> bool:
        """Take a token only if one is available right now (no waiting, no debt)."""
        if self.unlimited:
            return True
        self._refill()
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    async def acquire(self) -> None:
        delay = self.reserve()
        if delay <= 0:
            return
        try:
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            self._tokens = min(self._burst, self._tokens + 1.0)
            raise
