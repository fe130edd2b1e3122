"""Which code ran on the event loop's thread: a fresh interpreter runs a coroutine under
``asyncio.run`` with a profile hook on the main thread (the loop's), and reports the calls of
the watched functions there, module bodies (``<module>``, i.e. imports) included.

Work sent to a worker thread is invisible to the hook (``sys.setprofile`` is per thread), so an
empty answer means the watched code ran off the loop, or not at all; tests check both.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

_PROBE = """
import asyncio, json, sys

_PATHS, _NAMES, _calls = {paths!r}, {names!r}, []


def _watch(frame, event, arg):
    if event == "call":
        code = frame.f_code
        if code.co_name in _NAMES and any(p in code.co_filename for p in _PATHS):
            where = code.co_filename.rsplit("site-packages/", 1)[-1].removeprefix({repo!r})
            _calls.append(f"{{where}}:{{code.co_name}}")

{setup}

sys.setprofile(_watch)
_result = asyncio.run(main())
sys.setprofile(None)
print(json.dumps({{"calls": _calls, "result": _result}}))
"""


def loop_thread_calls(
    setup: str,
    *,
    paths: Sequence[str],
    names: Sequence[str] = ("<module>",),
    env: dict[str, str] | None = None,
) -> tuple[list[str], Any]:
    """``setup`` (Python source, run before the hook) defines ``async def main()``; returns
    ``file:function`` of every call on the loop's thread to a function named in ``names`` in a
    file whose path contains one of ``paths``, and what ``main`` returned (JSON)."""
    script = _PROBE.format(
        paths=tuple(paths), names=tuple(names), repo=f"{REPO}/", setup=textwrap.dedent(setup)
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    return answer["calls"], answer["result"]
