"""Measures event-loop lag so /healthz can report a loop that is alive but starved.

A loop blocked outright cannot answer the probe at all; one that is merely late (a blocking call
sneaking onto the hot path, CPU starvation) still answers, and this makes that visible.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable


class LoopLagMonitor:
    def __init__(
        self,
        interval: float = 0.5,
        max_lag: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval = interval
        self._max_lag = max_lag
        self._clock = clock
        # The worst of the last few samples, so one late tick is still visible to the next probe.
        self._samples: deque[float] = deque([0.0], maxlen=10)

    @property
    def lag(self) -> float:
        return max(self._samples)

    async def run(self) -> None:
        while True:
            started = self._clock()
            await asyncio.sleep(self._interval)
            self._samples.append(max(0.0, self._clock() - started - self._interval))

    async def healthy(self) -> bool:
        return self.lag <= self._max_lag
