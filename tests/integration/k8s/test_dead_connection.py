"""A quiet watch whose server is gone without a word (no FIN, no RST: a node powered off, a
partition) over a real network link: TCP keepalive finds it within its bound, while the same
watch without keepalive would wait on (its read timeout is the server's timeoutSeconds plus a
margin, minutes). The scenario runs in network namespaces of its own (tests/support/dead_peer)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.dead_peer import SCALED, WAIT
from tests.support.mounts import is_root

ROOT = Path(__file__).resolve().parents[3]
TOOLS = ("unshare", "nsenter", "ip")


@pytest.mark.skipif(
    not is_root() or any(shutil.which(tool) is None for tool in TOOLS),
    reason="needs root and unshare, nsenter, ip (network namespaces and a veth pair)",
)
def test_keepalive_finds_a_peer_that_vanished_without_a_word() -> None:
    run = subprocess.run(
        ["unshare", "--net", sys.executable, "-m", "tests.support.dead_peer"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    if "skip" in result:
        pytest.skip(result["skip"])
    assert result["keepalive"] is not None, f"the dead peer went unnoticed for {WAIT} s"
    seconds, why = result["keepalive"]
    assert seconds <= SCALED.detects_within + 1.0, result
    assert why.startswith("watch pods"), why
    assert result["without"] is None, f"without keepalive nothing notices within {WAIT} s"
