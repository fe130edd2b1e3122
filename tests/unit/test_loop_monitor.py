from __future__ import annotations

import asyncio
import time

from agent.aio.loop_monitor import LoopLagMonitor


async def test_blocking_the_loop_shows_up_as_lag() -> None:
    monitor = LoopLagMonitor(interval=0.01, max_lag=0.05)
    task = asyncio.create_task(monitor.run())
    try:
        await asyncio.sleep(0.03)
        assert await monitor.healthy()
        time.sleep(0.1)  # a blocking call on the loop, on purpose
        await asyncio.sleep(0.02)
        assert monitor.lag >= 0.05
        assert not await monitor.healthy()
        await asyncio.sleep(0.2)  # ten calm samples later the loop counts as recovered
        assert await monitor.healthy()
    finally:
        task.cancel()
