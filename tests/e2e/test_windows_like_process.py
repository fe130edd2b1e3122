"""The agent as a process in "windows-like" mode: Windows target paths and rules, the
path-based directory volume with the per-file writer, the standard library's event loop and the
portable signal path, driven over its socket by grpcio as kubelet would. Emulated on Linux
(``tests.support.windows_agent``); docs/windows.md says what only a Windows node can prove."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from tests.e2e.conftest import Agents
from tests.support.instant_agent import content
from tests.support.kubelet import Kubelet, publish_request
from tests.support.windows_agent import LOCAL_ROOT_VARIABLE

UID = "5e1f0c2a-7b3d-4c8e-9a6f-0123456789ab"
TARGET = f"C:\\var\\lib\\kubelet\\pods\\{UID}\\volumes\\kubernetes.io~csi\\secrets\\mount"
SPC_YAML = """\
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {{name: win, namespace: default}}
spec:
  provider: instant
  parameters: {{objectCount: "2", objectSize: "64", revision: "{revision}"}}
"""
DEADLINE_S = 30.0


async def wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"not within {DEADLINE_S:g}s: {what}"
        await asyncio.sleep(0.05)


async def test_windows_like_agent_publishes_rotates_and_stops_on_sigterm(agents: Agents) -> None:
    local = agents.root / "kubelet-c"
    mount = local / "pods" / UID / "volumes" / "kubernetes.io~csi" / "secrets" / "mount"
    mount.parent.mkdir(parents=True)  # as kubelet does
    (agents.root / "win.yaml").write_text(SPC_YAML.format(revision="1"), encoding="utf-8")
    agent = agents.start(
        "--event-loop=asyncio",
        "--mount-mode=directory",
        "--enable-secret-rotation",
        "--rotation-poll-interval=50ms",
        module="tests.support.windows_agent",
        env={**os.environ, LOCAL_ROOT_VARIABLE: str(local)},
    )
    kubelet = Kubelet(str(agent.socket))
    try:
        await kubelet.publish(publish_request(TARGET, spc="win", uid=UID, volume_id="csi-win"))
        assert (mount / "secret-000").read_bytes() == content(0, 64)
        assert not [p for p in mount.rglob("*") if p.is_symlink()]
        (agents.root / "win.yaml").write_text(SPC_YAML.format(revision="2"), encoding="utf-8")
        await wait_for(
            lambda: _read(mount / "secret-001") == content(1, 64, "2"),
            "the rotated content written by the Windows writer",
        )
        await kubelet.unpublish("csi-win", TARGET)
        assert not mount.exists()
    finally:
        await kubelet.close()
    assert agent.terminate() == 0  # SIGTERM through the portable signal path
    started = agent.events_named("agent.started")[-1]
    assert (started["event_loop"], started["node_os"]) == ("asyncio", "windows")
    assert started["kubelet_root_dir"] == "C:\\var\\lib\\kubelet"
    assert agent.events_named("agent.stopping") and agent.events_named("agent.stopped")
    assert not agent.socket.exists()


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None
