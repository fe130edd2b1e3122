from __future__ import annotations

import asyncio
import threading
import time

import pytest

from agent.aio.threads import run_blocking, run_loading


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


async def test_loading_runs_off_the_loop_in_one_thread_in_arrival_order() -> None:
    seen: list[tuple[int, str]] = []

    def load(number: int) -> int:
        seen.append((number, threading.current_thread().name))
        return number

    assert await asyncio.gather(*(run_loading(load, n) for n in range(4))) == [0, 1, 2, 3]
    assert [number for number, _ in seen] == [0, 1, 2, 3]
    assert len({thread for _, thread in seen}) == 1
    assert seen[0][1] != threading.main_thread().name
