"""Kubeconfig users for the credential tests: a kubeconfig of the fake API server with another
user, shell-script exec plugins (``client.authentication.k8s.io/v1`` ExecCredential), and the
means to find (and kill) the plugin processes a test left running."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import signal
import stat
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from agent.logs import configure_logging
from tests.fakes.kube_api import FakeKubeApi

FIRST, SECOND = "first-credential-0123456789", "second-credential-9876543210"
JWT_SHAPED = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ3ZWIifQ.c2lnbmF0dXJl"
EXEC_API = "client.authentication.k8s.io/v1"


def capture_logs() -> io.StringIO:
    """The agent's JSON log lines from now on, kubernetes_asyncio's debug lines included."""
    stream = io.StringIO()
    configure_logging(json=True, verbosity=5, stream=stream, debug_loggers=("kubernetes_asyncio",))
    return stream


def kubeconfig_with_user(kube: FakeKubeApi, directory: Path, user: dict[str, Any]) -> Path:
    """The fake's kubeconfig with ``user`` as its one user (named ``fake``)."""
    config = yaml.safe_load(kube.kubeconfig_path.read_text())
    config["users"][0]["user"] = user
    path = directory / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def in_cluster(kube: FakeKubeApi, directory: Path, token: str) -> dict[str, str]:
    """The service account files kubelet mounts (token, ca.crt) in ``directory``; the
    environment kubelet gives a pod."""
    assert kube.tls is not None
    directory.mkdir()
    (directory / "token").write_text(token)
    (directory / "ca.crt").write_text(kube.tls.ca_path.read_text())
    return {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(kube.port)}


def script_plugin(directory: Path, body: str) -> dict[str, Any]:
    """A kubeconfig user whose exec plugin is ``directory/plugin.sh`` running ``body``."""
    script = directory / "plugin.sh"
    script.write_text(f"#!/bin/sh\n{body}")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return {"exec": {"apiVersion": EXEC_API, "command": str(script), "interactiveMode": "Never"}}


def exec_credential(token: str, expires_in: timedelta | None = None) -> str:
    """The JSON a plugin prints for ``token`` (``%s`` keeps it a printf format)."""
    status = f'"token":"{token}"'
    if expires_in is not None:
        expiry = (datetime.now(UTC) + expires_in).strftime("%Y-%m-%dT%H:%M:%SZ")
        status += f',"expirationTimestamp":"{expiry}"'
    return f'{{"apiVersion":"{EXEC_API}","kind":"ExecCredential","status":{{{status}}}}}'


def token_file_plugin(directory: Path, token_file: Path) -> dict[str, Any]:
    """A plugin that prints the token in ``token_file`` (as JSON string text: ``\\u0000`` is a
    NUL), expiring within the client's margin (so every request asks it again); it counts its
    runs."""
    credential = exec_credential("%s", timedelta(seconds=5))
    return script_plugin(
        directory, f"echo run >> {directory}/runs\nprintf '{credential}' \"$(cat {token_file})\"\n"
    )


def hanging_plugin(directory: Path) -> dict[str, Any]:
    """A plugin that answers (a token valid for 5 s: inside the client's margin, so every
    request asks it again) until ``directory/hang`` exists, then never answers, or fails
    (quoting a token on stderr) once ``directory/fail`` does; it counts its runs."""
    credential = exec_credential(FIRST, timedelta(seconds=5))
    shutil.copy(shutil.which("sleep") or "/bin/sleep", directory / "sleep")  # names its dir
    return script_plugin(
        directory,
        f"echo run >> {directory}/runs\n"
        f"if [ -f {directory}/hang ]; then exec {directory}/sleep 600; fi\n"
        f"if [ -f {directory}/fail ]; then echo 'denied: {JWT_SHAPED}' >&2; exit 3; fi\n"
        f"printf '%s' '{credential}'\n",
    )


def plugin_processes(marker: Path) -> list[int]:
    """Running processes whose command line names ``marker`` (a plugin left behind)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if entry.name.isdigit() and str(marker) in cmdline:
            found.append(int(entry.name))
    return found


def killed_leftovers(marker: Path) -> int:
    """Kill the plugins left running (so a failing test leaves none); how many there were."""
    leftovers = plugin_processes(marker)
    for pid in leftovers:
        os.kill(pid, signal.SIGKILL)
    return len(leftovers)


async def kill_and_reap(marker: Path) -> None:
    """Kill the plugins left running and wait until asyncio's child watcher has reaped them
    and told this loop (else their Popen, never waited for, warns "subprocess ... is still
    running" when collected after the loop closed: an unraisable error at pytest's exit)."""
    pids = plugin_processes(marker)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in pids) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # the watcher's call_soon_threadsafe reaches the loop
