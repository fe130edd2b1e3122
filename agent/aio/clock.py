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


async def sleep_until_woken(clock: Clock, moment: float | None, wake: asyncio.Event) -> None:
    """Until ``clock`` reads ``moment`` (never, for None) or ``wake`` is set, whichever comes
    first; ``wake`` is left as it is. For loops that sleep toward a deadline but must act at
    once on news. A cancellation of the caller always propagates, even one that arrives while
    the losing waiter winds down (suppressing that waiter's CancelledError would swallow it,
    and the loop would run on after its owner stopped it)."""
    waits: list[asyncio.Future[object]] = [asyncio.ensure_future(wake.wait())]
    if moment is not None:
        waits.append(asyncio.ensure_future(clock.sleep_until(moment)))
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waits:
            waiter.cancel()
        await asyncio.wait(waits)  # raises only for this task's own cancellation
