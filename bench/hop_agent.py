"""The instant agent (``bench/instant_agent.py``) with a thread-hop tracer and, optionally, a
profile of the event loop's thread, to see where a paced publish spends its time.

Every call into the loop's default executor is recorded: what ran, how long it waited for a
worker thread to pick it up (a wake-up after idle), how long it ran, and how long the loop took
to resume after it finished. Hops are grouped per publish (between the start and the end of
``PublishVolume.__call__``). On exit a JSON summary goes to ``$HOP_TRACE_FILE``; with
``$HOP_PROFILE_FILE`` set, the loop thread runs under cProfile and its stats are dumped there.

``BENCH_AGENT_SCRIPT=bench/hop_agent.py HOP_TRACE_FILE=/tmp/hops.json python -m
bench.kubelet_bench --cases inprocess --starts 0`` (the trace of the last agent started wins).
"""

from __future__ import annotations

import asyncio
import atexit
import cProfile
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from agent import app
from agent.core import publish as publish_module
from tests.support.instant_agent import main

HOPS: list[dict[str, Any]] = []
PUBLISHES: list[tuple[float, float]] = []
_LOCK = threading.Lock()


def _name(func: Callable[..., Any]) -> str:
    inner = getattr(func, "args", None)  # functools.partial(context.run, func, ...)
    if inner:
        func = inner[0]
    return getattr(func, "__qualname__", repr(func))


class TracingExecutor(ThreadPoolExecutor):
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        hop: dict[str, Any] = {"name": _name(fn), "submit": time.perf_counter()}

        def run() -> Any:
            hop["start"] = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                hop["end"] = time.perf_counter()

        with _LOCK:
            HOPS.append(hop)
        return super().submit(run)


def _trace_publish() -> None:
    original = publish_module.PublishVolume.__call__

    async def traced(self: Any, request: Any) -> Any:
        started = time.perf_counter()
        try:
            return await original(self, request)
        finally:
            PUBLISHES.append((started, time.perf_counter()))

    # A deliberate monkeypatch (mypy refuses any assignment to a method).
    publish_module.PublishVolume.__call__ = traced  # type: ignore[method-assign]


def _report() -> None:
    path = os.environ.get("HOP_TRACE_FILE")
    if not path:
        return
    per_publish: list[dict[str, Any]] = []
    for started, ended in PUBLISHES[20:]:  # past the warm-up
        hops = [h for h in HOPS if started <= h["submit"] <= ended and "end" in h]
        per_publish.append(
            {
                "total_ms": (ended - started) * 1000,
                "hops": [
                    (
                        h["name"],
                        round((h["start"] - h["submit"]) * 1000, 3),
                        round((h["end"] - h["start"]) * 1000, 3),
                    )
                    for h in hops
                ],
            }
        )
    counts = [len(p["hops"]) for p in per_publish]
    by_name: dict[str, list[tuple[float, float]]] = {}
    for p in per_publish:
        for name, wait, run in p["hops"]:
            by_name.setdefault(name, []).append((wait, run))
    summary = {
        "publishes": len(per_publish),
        "hops_per_publish": statistics.median(counts) if counts else 0,
        "total_ms_p50": statistics.median(p["total_ms"] for p in per_publish) if per_publish else 0,
        "by_hop": {
            name: {
                "n": len(values),
                "wait_ms_p50": round(statistics.median(v[0] for v in values), 3),
                "run_ms_p50": round(statistics.median(v[1] for v in values), 3),
            }
            for name, values in by_name.items()
        },
        "examples": per_publish[-3:],
    }
    with open(path, "w", encoding="utf-8") as out:
        json.dump(summary, out, indent=1)


def _profile_until_exit(path: str) -> None:
    profiler = cProfile.Profile()
    profiler.enable()

    def dump() -> None:
        profiler.disable()
        profiler.dump_stats(path)

    atexit.register(dump)


def run() -> int:
    _trace_publish()
    atexit.register(_report)
    original_serve = app.serve

    async def serve(*args: Any, **kwargs: Any) -> None:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(TracingExecutor(thread_name_prefix="traced"))
        await original_serve(*args, **kwargs)

    app.serve = serve
    profile_path = os.environ.get("HOP_PROFILE_FILE")
    if profile_path:
        _profile_until_exit(profile_path)
    return main()


if __name__ == "__main__":
    sys.exit(run())
