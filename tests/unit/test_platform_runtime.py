"""The event loop choice and the stop signals, including the portable path Windows takes."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import pytest

from agent.flags import parse_settings
from agent.platform.runtime import DEFAULT_EVENT_LOOP, StopSignals, run, stop_signals


async def _signalled(native: bool, signum: signal.Signals) -> bool:
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    before = signal.getsignal(signum)
    handlers = StopSignals(loop, stopped.set, native=native)
    try:
        os.kill(os.getpid(), signum)
        # No timer is pending: only the wakeup socket (portable) or the loop's own signal
        # handling (native) can wake the loop for the handler.
        await asyncio.wait_for(stopped.wait(), 10)
    finally:
        handlers.close()
    if not native:  # (the loop's own remove_signal_handler resets SIGINT to Python's default)
        assert signal.getsignal(signum) == before  # restored
    return stopped.is_set()


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_a_stop_signal_reaches_the_loop(native: bool, signum: signal.Signals) -> None:
    assert await _signalled(native, signum)


async def test_portable_handlers_restore_the_wakeup_fd() -> None:
    loop = asyncio.get_running_loop()
    before = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(before)
    StopSignals(loop, lambda: None, native=False).close()
    assert signal.set_wakeup_fd(before) == before


def test_stop_signals_are_term_and_int_here() -> None:
    assert stop_signals()[:2] == (signal.SIGTERM, signal.SIGINT)
    assert len(stop_signals()) == (3 if hasattr(signal, "SIGBREAK") else 2)


@pytest.mark.parametrize("event_loop", ["uvloop", "asyncio"])
def test_run_uses_the_chosen_loop(event_loop: str) -> None:
    seen: list[str] = []

    async def main() -> None:
        seen.append(type(asyncio.get_running_loop()).__module__.split(".")[0])

    run(main(), event_loop)
    assert seen == [event_loop]


def test_event_loop_flag() -> None:
    assert ("asyncio" if sys.platform == "win32" else "uvloop") == DEFAULT_EVENT_LOOP
    assert parse_settings([])[0].event_loop == DEFAULT_EVENT_LOOP
    assert parse_settings(["--event-loop=asyncio"])[0].event_loop == "asyncio"
