"""TEST-ONLY crash points: SIGKILL the agent at a named step of publish, rotation or unpublish.

Fault tests (``tests/faults/``) start the agent with ``SECRETS_STORE_AGENT_CRASH_AT=<point>``
or ``<point>@<n>`` (the n-th time the point is reached, default the first) to kill it at an
exact step instead of guessing with timers, then restart it and replay kubelet's retries. Never
set it in production. When the variable is unset (always, outside tests) :func:`reached` is a
function that does nothing, decided once at import.

The points, in the order a first publish or an unpublish reaches them, are :data:`POINTS`; a
rotation reaches ``write.*`` when the content changed and ``record.*`` when the content or the
versions did (the steps it shares with publish). ``docs/crash-safety.md`` says what each leaves
on the node and what heals it.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable

ENVIRONMENT_VARIABLE = "SECRETS_STORE_AGENT_CRASH_AT"

POINTS = (
    "publish.target_created",  # the empty target directory exists, nothing mounted
    "publish.mounted",  # the tmpfs is mounted and empty
    "write.payload_written",  # a timestamped directory holds every file; no visible link yet
    "write.links_made",  # visible links exist and dangle: ``..data`` does not exist yet
    "write.swapped",  # ``..data`` is in place: content complete, no metadata, no status
    "write.listed",  # Windows writer: manifest lists old and new files, marked incomplete
    "write.file_replaced",  # Windows writer: one more file renamed into place (``@n``: n-th)
    "record.metadata_saved",  # metadata saved; the status may or may not be written
    "record.status_saved",  # status saved; the metadata may or may not be written
    "unpublish.cleared",  # the agent's files are removed; still mounted
    "unpublish.unmounted",  # unmounted; the empty target directory is still there
    "unpublish.removed",  # the target directory is gone; the status is still there
)


def _noop(point: str) -> None:
    """Production: nothing to do."""


def _armed(spec: str) -> tuple[str, int]:
    point, _, count = spec.partition("@")
    if point not in POINTS:
        raise ValueError(f"{ENVIRONMENT_VARIABLE}: unknown crash point {point!r}")
    return point, int(count or "1")


def _make_killer(point: str, count: int) -> Callable[[str], None]:
    hits = 0
    lock = threading.Lock()  # points are reached from worker threads too

    def reached(name: str) -> None:
        nonlocal hits
        if name != point:
            return
        with lock:
            hits += 1
            if hits == count:
                os.kill(os.getpid(), signal.SIGKILL)

    return reached


_SPEC = os.environ.get(ENVIRONMENT_VARIABLE, "")
reached: Callable[[str], None] = _make_killer(*_armed(_SPEC)) if _SPEC else _noop
