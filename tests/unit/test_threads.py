from __future__ import annotations

import asyncio
import threading
import time

import pytest

from agent.aio.threads import run_blocking


async def test_cancellation_waits_for_the_thread_to_finish() -> None:
    finished = threading.Event()

    def slow_write() -> None:
        time.sleep(0.2)
        finished.set()

    task = asyncio.create_task(run_blocking(slow_write))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished.is_set(), "the caller moved on while the blocking work was still running"


async def test_results_and_errors_pass_through() -> None:
    assert await run_blocking(lambda a, b: a + b, 2, b=3) == 5
    with pytest.raises(ZeroDivisionError):
        await run_blocking(lambda: 1 / 0)


async def test_a_second_cancellation_still_waits_for_the_thread() -> None:
    finished = threading.Event()

    def slow_write() -> None:
        time.sleep(0.2)
        finished.set()

    task = asyncio.create_task(run_blocking(slow_write))
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.sleep(0.02)
    task.cancel()  # as grpclib does on a deadline: its timer, then the client's RST_STREAM
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished.is_set()
