"""Time as a port: what "now" is and how to wait, so schedules can be tested without waiting.

The rotation scheduler takes a ``Clock``; production uses ``SystemClock`` (wall-clock seconds,
the unit of ``VolumeRecord.updated_at``), tests a manual clock they advance by hand
(``tests/support/clock.py``), and the benchmark runs a thousand cycles back to back with one.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch (may jump with the wall clock; schedules tolerate that)."""
        ...

    async def sleep_until(self, moment: float) -> None:
        """Return once this clock reads ``moment`` or later; cancellable. An absolute time,
        so a clock that moves between computing a deadline and sleeping cannot stretch it."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    async def sleep_until(self, moment: float) -> None:
        await asyncio.sleep(max(moment - time.time(), 0.0))
