"""The real agent (``python -m agent serve`` flags) with an event-loop stall tracer.

A heartbeat task ticks the loop every millisecond; a watchdog thread notices when a tick is late
by more than ``--stall-ms`` and samples the loop thread's Python stack then (and again while the
stall lasts), so a stall is reported with the code that held the loop: an import, a file read,
a CPU-heavy parse. On exit the stalls are written as JSON to ``$LOOP_TRACE_FILE``.

Run as a script so that ``PYTHONPATH`` decides which checkout's ``agent`` package it traces
(``bench/five_providers_bench.py --baseline DIR`` compares two):
``python bench/traced_agent.py <serve flags>``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field

from agent.app import serve
from agent.config import Settings
from agent.flags import parse_settings
from agent.logs import configure_logging

TICK_S = 0.001
SAMPLE_AFTER_MS = (10.0, 40.0, 160.0)  # stack samples taken this far into a stall


@dataclass
class Stall:
    started: float  # wall-clock time (time.time()) of the last tick before the stall
    duration_ms: float = 0.0
    stacks: list[list[str]] = field(default_factory=list)  # innermost frame first


class LoopTracer:
    def __init__(self, stall_ms: float) -> None:
        self.stall_ms = stall_ms
        self.stalls: list[Stall] = []
        self._last_tick = time.monotonic()
        self._last_wall = time.time()
        self._loop_thread = threading.get_ident()
        self._stop = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name="loop-tracer", daemon=True)

    async def heartbeat(self) -> None:
        self._watchdog.start()
        while True:
            self._last_tick = time.monotonic()
            self._last_wall = time.time()
            await asyncio.sleep(TICK_S)

    def stop(self) -> None:
        self._stop.set()
        self._watchdog.join()

    def _watch(self) -> None:
        current: Stall | None = None
        while not self._stop.wait(TICK_S):
            late_ms = (time.monotonic() - self._last_tick) * 1000 - TICK_S * 1000
            if late_ms < self.stall_ms:
                current = None
                continue
            if current is None:
                current = Stall(started=self._last_wall)
                self.stalls.append(current)
            current.duration_ms = round(late_ms, 1)
            if (
                len(current.stacks) < len(SAMPLE_AFTER_MS)
                and late_ms >= SAMPLE_AFTER_MS[len(current.stacks)]
            ):
                current.stacks.append(self._stack())

    def _stack(self) -> list[str]:
        frame = sys._current_frames().get(self._loop_thread)
        if frame is None:
            return []
        entries = traceback.extract_stack(frame)
        return [f"{e.filename}:{e.lineno} {e.name}" for e in reversed(entries)][:40]


async def main(settings: Settings, tracer: LoopTracer) -> None:
    beat = asyncio.create_task(tracer.heartbeat(), name="loop-tracer")
    try:
        await serve(settings)
    finally:
        beat.cancel()
        tracer.stop()


def run() -> None:
    argv = sys.argv[1:]
    settings, _ = parse_settings(argv[1:] if argv[:1] == ["serve"] else argv)
    configure_logging(
        json=settings.log_format_json,
        verbosity=settings.verbosity,
        debug_loggers=settings.debug_loggers,
    )
    import uvloop

    tracer = LoopTracer(float(os.environ.get("LOOP_TRACE_STALL_MS", "5")))
    uvloop.run(main(settings, tracer))
    path = os.environ.get("LOOP_TRACE_FILE")
    if path:
        with open(path, "w", encoding="utf-8") as out:
            json.dump([asdict(s) for s in tracer.stalls], out)


if __name__ == "__main__":
    run()
