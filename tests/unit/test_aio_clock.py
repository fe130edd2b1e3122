"""``sleep_until_woken``: the deadline or the wake, whichever first, and a cancellation of
the sleeper is never swallowed, even one that lands while the losing waiter winds down (that
made the re-sync loop run on after the agent stopped it, and the stop wait forever)."""

from __future__ import annotations

import asyncio

import pytest

from agent.aio.clock import sleep_until_woken
from tests.support.clock import ManualClock


class SlowToStopClock(ManualClock):
    """Its sleeper takes a while to wind down once cancelled (until ``release``)."""

    def __init__(self) -> None:
        super().__init__()
        self.winding_down = asyncio.Event()
        self.release = asyncio.Event()

    async def sleep_until(self, moment: float) -> None:
        try:
            await super().sleep_until(moment)
        except asyncio.CancelledError:
            self.winding_down.set()
            await self.release.wait()
            raise


async def test_returns_at_the_deadline_or_on_the_wake() -> None:
    clock, wake = ManualClock(), asyncio.Event()
    sleeper = asyncio.create_task(sleep_until_woken(clock, clock.now() + 5, wake))
    await asyncio.sleep(0)
    clock.advance(5)
    await asyncio.wait_for(sleeper, 5)
    wake.set()
    await asyncio.wait_for(sleep_until_woken(clock, None, wake), 5)
    assert wake.is_set()  # left as it is: the caller clears it


async def test_a_cancellation_while_the_losing_waiter_winds_down_propagates() -> None:
    clock, wake = SlowToStopClock(), asyncio.Event()
    sleeper = asyncio.create_task(sleep_until_woken(clock, clock.now() + 3600, wake))
    await asyncio.sleep(0)
    wake.set()  # the wake wins; the clock's sleeper is cancelled and winds down
    await asyncio.wait_for(clock.winding_down.wait(), 5)
    sleeper.cancel()  # the owner stops the loop just then
    clock.release.set()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(sleeper, 5)
