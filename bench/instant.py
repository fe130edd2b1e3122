"""Start the agent as a subprocess, as the benchmarks measure it, most often with the in-process
``instant`` provider (``tests/support/instant_agent.py``): tmpfs as root, otherwise directories,
and the benchmark's directory as the kubelet root (``--kubelet-root-dir``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path


def start_instant_agent(
    root: Path, manifests: Mapping[str, str], *, log: bool = True
) -> tuple[subprocess.Popen[bytes], str]:
    """Write ``manifests`` (file name → YAML) into ``root/spc``, start the agent with ``root`` as
    its kubelet root, and wait for its socket. Returns the process and the socket path.
    ``BENCH_PYTHON_ARGS="-m cProfile -o agent.prof"`` profiles the agent under the load."""
    (root / "spc").mkdir()
    for name, text in manifests.items():
        (root / "spc" / name).write_text(text)
    socket = str(root / "csi.sock")
    mode = "tmpfs" if os.geteuid() == 0 else "directory"
    command = [
        sys.executable, *os.environ.get("BENCH_PYTHON_ARGS", "").split(),
        "-m", "tests.support.instant_agent", f"--endpoint=unix://{socket}",
        f"--standalone-dir={root / 'spc'}", f"--mount-mode={mode}", "--nodeid=bench",
        "--metrics-addr=127.0.0.1:0", "--health-addr=127.0.0.1:0", f"--state-dir={root / 'state'}",
        f"--kubelet-root-dir={root}", "--log-format-json",
    ]  # fmt: skip
    return launch(command, root, socket, log=log), socket


def launch(
    command: list[str],
    root: Path,
    socket: str,
    env: dict[str, str] | None = None,
    *,
    log: bool = True,
) -> subprocess.Popen[bytes]:
    """Start the agent (stdout to ``root/agent.log``, or nowhere) and wait for its CSI socket."""
    stdout = (root / "agent.log").open("wb") if log else subprocess.DEVNULL
    process = subprocess.Popen(command, stdout=stdout, env=env)
    deadline = time.monotonic() + 20
    while not os.path.exists(socket):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("agent did not start")
        time.sleep(0.05)
    return process


def hide_dev_packages(directory: Path) -> str:
    """A directory whose ``pydantic`` refuses to import. The dev venv has pydantic (moto's);
    betterproto2 imports it when present and loads its dataclasses on the first message
    (+4.3 MiB at start, +3 MiB and ~30 ms on the loop at the first publish). The agent's own
    install has no pydantic, so the agent is measured without it."""
    package = directory / "pydantic"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('raise ImportError("not in the agent install")\n')
    return str(directory)
