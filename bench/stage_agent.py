"""The instant agent (``bench/instant_agent.py``) with timestamps at each stage of a CSI call
inside the agent, to see what a paced publish spends outside the publish handler: grpclib and
h2 receiving the frames, decoding the request, sending the reply.

Stages of one call, each the time from the previous mark (µs):

- ``receive``: the first ``data_received`` of the call until grpclib's request task starts
  (h2 parses the frames, hpack decodes the headers, grpclib creates the stream and the task);
- ``decode``: until ``recv_message`` returns the decoded request (headers checked, deadline,
  metadata, the protobuf decode);
- ``handler``: until the reply is handed to ``send_message`` (for a publish: ``PublishVolume``);
- ``reply``: until ``send_message`` returns (initial metadata and the message sent);
- ``trailers``: until ``send_trailing_metadata`` returns;
- ``finish``: until grpclib's request task ends.

A call is *paced* when the agent was idle 50 ms or more before it. On exit a JSON summary
(median per stage, per kind of call: ``publish``, ``unpublish`` or ``other``, the Probe among
the latter, and paced or back to back) goes to ``$STAGE_FILE``.

``BENCH_AGENT_SCRIPT=bench/stage_agent.py STAGE_FILE=/tmp/stages.json unshare -m --propagation
private python -m bench.kubelet_bench --cases inprocess --starts 0``
"""

from __future__ import annotations

import atexit
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from itertools import pairwise
from typing import Any

import grpclib.protocol
import grpclib.server

from agent.core import publish as publish_module
from agent.core import unpublish as unpublish_module
from tests.support.instant_agent import main

MARKS = ("received", "task", "decoded", "send", "sent", "trailers", "done")
STAGES = ("receive", "decode", "handler", "reply", "trailers", "finish")  # between the marks
PACED_AFTER_S = 0.05
EVENTS: list[tuple[str, float]] = []


def _mark(name: str) -> None:
    EVENTS.append((name, time.perf_counter()))


def _wrap_async(owner: Any, attribute: str, before: str | None, after: str | None) -> None:
    original: Callable[..., Awaitable[Any]] = getattr(owner, attribute)

    async def wrapped(*args: Any, **kwargs: Any) -> Any:
        if before:
            _mark(before)
        try:
            return await original(*args, **kwargs)
        finally:
            if after:
                _mark(after)

    setattr(owner, attribute, wrapped)


def _install() -> None:
    received = grpclib.protocol.H2Protocol.data_received

    def data_received(self: Any, data: bytes) -> None:
        _mark("received")
        received(self, data)

    # A deliberate monkeypatch (mypy refuses any assignment to a method).
    grpclib.protocol.H2Protocol.data_received = data_received  # type: ignore[method-assign]
    # Looked up as a module global by Handler.accept at each call.
    _wrap_async(grpclib.server, "request_handler", "task", "done")
    _wrap_async(grpclib.server.Stream, "recv_message", None, "decoded")
    _wrap_async(grpclib.server.Stream, "send_message", "send", "sent")
    _wrap_async(grpclib.server.Stream, "send_trailing_metadata", None, "trailers")
    _wrap_async(publish_module.PublishVolume, "__call__", "publish", None)
    _wrap_async(unpublish_module.UnpublishVolume, "__call__", "unpublish", None)


def _calls() -> list[list[tuple[str, float]]]:
    calls, current = [], []
    for event in EVENTS:
        current.append(event)
        if event[0] == "done":
            calls.append(current)
            current = []
    return calls


def summarize() -> dict[str, dict[str, float]]:
    """{"<kind>.<paced|b2b>": {stage: median µs, "n": calls}} for calls on one stream each."""
    rows: dict[str, dict[str, list[float]]] = {}
    idle_since = 0.0
    for call in _calls():
        first: dict[str, float] = {}
        for name, at in call:
            first.setdefault(name, at)
        paced = call[0][1] - idle_since >= PACED_AFTER_S
        idle_since = call[-1][1]
        if not all(mark in first for mark in MARKS):
            continue  # an aborted call, or frames of two calls in one chunk
        kind = next((k for k in ("publish", "unpublish") if k in first), "other")
        kind += ".paced" if paced else ".b2b"
        stages = rows.setdefault(kind, {})
        for stage, (start, end) in zip(STAGES, pairwise(MARKS), strict=True):
            stages.setdefault(stage, []).append((first[end] - first[start]) * 1e6)
        stages.setdefault("total", []).append((first["trailers"] - first["received"]) * 1e6)
    return {
        kind: {
            **{stage: round(statistics.median(values), 1) for stage, values in stages.items()},
            "n": len(stages["total"]),
        }
        for kind, stages in rows.items()
    }


def _report() -> None:
    path = os.environ.get("STAGE_FILE")
    if path:
        summary = summarize()
        with open(path, "w", encoding="utf-8") as out:
            json.dump(summary, out, indent=1)


if __name__ == "__main__":
    _install()
    atexit.register(_report)
    sys.exit(main())
