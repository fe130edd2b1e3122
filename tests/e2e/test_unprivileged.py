"""The agent run as a non-root user (``nobody``, no capabilities) with ``--mount-mode
directory``, as the README promises: standalone classes, a real OpenBao, a grpcio client on its
CSI socket. What needs root fails with an error that names the flag to change.

Root is needed to start it (``tests.support.unprivileged`` drops to ``nobody`` in the child);
the ``agents`` fixture skips, saying so, when the tests do not run as root.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.e2e.conftest import START_TIMEOUT_S, AgentProcess, Agents, VaultSetup, new_pod_uid
from tests.support.kubelet import Kubelet, publish_request
from tests.support.mounts import mounts_under
from tests.support.unprivileged import NOBODY, unprivileged_prefix


class UnprivilegedAgent(AgentProcess):
    """The e2e agent process, exec'd as uid/gid ``nobody`` with no supplementary groups."""

    def command(self) -> list[str]:
        return [*unprivileged_prefix(NOBODY, NOBODY), *super().command()]


def start_unprivileged(agents: Agents, *args: str, ready: bool = True) -> UnprivilegedAgent:
    os.chown(agents.root, NOBODY, NOBODY)  # the agent's own directory: socket, state, status
    agent = UnprivilegedAgent(agents.root, list(args))
    agents.started.append(agent)
    agent.start()
    if ready:
        agent.wait_ready()
    return agent


def kubelet_dirs_owned_by_nobody(agent: AgentProcess, pod_uid: str) -> Path:
    """The target, with kubelet's directories above it owned by the agent's user."""
    target = agent.target(pod_uid)
    directory = target.parent
    while directory != agent.root:
        os.chown(directory, NOBODY, NOBODY)
        directory = directory.parent
    return target


def process_ids(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.split()[0] if value.split() else ""
    return fields


def wait_exit(agent: AgentProcess) -> int:
    assert agent.process is not None
    return agent.process.wait(timeout=START_TIMEOUT_S)


def vault_spc(vault: VaultSetup, name: str) -> tuple[str, dict[str, Any]]:
    path = f"app/{name}"
    vault.put(path, {"password": "s3cr3t-value", "user": "app"})
    objects: list[dict[str, str | int]] = [
        {"objectName": "password", "secretPath": vault.secret_path(path), "secretKey": "password"},
        {
            "objectName": "user",
            "secretPath": vault.secret_path(path),
            "secretKey": "user",
            "filePermission": 0o640,
        },
    ]
    return vault.spc_yaml(name, objects), {"password": b"s3cr3t-value", "user": b"app"}


async def test_nobody_publishes_reads_and_unpublishes_directory_volumes(
    agents: Agents, vault: VaultSetup
) -> None:
    text, expected = vault_spc(vault, "unpriv")
    (agents.root / "unpriv.yaml").write_text(text, encoding="utf-8")
    agent = start_unprivileged(agents, "--mount-mode=directory")
    ids = process_ids(agent.pid)
    assert ids["Uid"] == ids["Gid"] == str(NOBODY)
    assert ids["Groups"] == ""
    assert int(ids["CapEff"], 16) == 0
    assert agent.get("health", "/readyz?verbose")[0] == 200

    target = kubelet_dirs_owned_by_nobody(agent, pod_uid := new_pod_uid())
    kubelet = Kubelet(str(agent.socket))
    try:
        request = publish_request(
            str(target), spc="unpriv", uid=pod_uid, tokens={"vault": vault.jwt()}
        )
        await kubelet.publish(request)
        assert not mounts_under(str(target))  # a directory on disk, no mount
        files = {name: (target / name).read_bytes() for name in expected}
        assert files == expected
        for name, mode in (("password", 0o644), ("user", 0o640)):
            info = (target / name).stat()  # through the ..data symlink, as a pod reads it
            assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (NOBODY, NOBODY, mode)
        await kubelet.unpublish(request.volume_id, str(target))
    finally:
        await kubelet.close()
    assert not target.exists()
    assert agent.terminate() == 0
    assert "s3cr3t-value" not in agent.output()
    assert not agent.events_named("agent.version_key_not_saved")


def test_nobody_without_directory_mode_is_refused_naming_the_flag(agents: Agents) -> None:
    agent = start_unprivileged(agents, ready=False)
    assert wait_exit(agent) != 0
    [failed] = agent.events_named("agent.failed")
    assert failed["reason"] == "InvalidConfiguration"
    assert failed["error"].startswith("--mount-mode: tmpfs volumes need CAP_SYS_ADMIN")
    assert f"uid {NOBODY}" in failed["error"]
    assert "--mount-mode directory" in failed["error"]
    assert not agent.socket.exists()


async def test_root_owned_kubelet_dirs_and_state_dir_name_their_flags(
    agents: Agents, vault: VaultSetup
) -> None:
    text, _ = vault_spc(vault, "rootdirs")
    (agents.root / "rootdirs.yaml").write_text(text, encoding="utf-8")
    roots_state = agents.root / "roots-state"
    roots_state.mkdir(mode=0o755)
    agent = start_unprivileged(agents, "--mount-mode=directory", f"--state-dir={roots_state}")
    [unsaved] = agent.events_named("agent.version_key_not_saved")
    assert unsaved["error"] == "Permission denied"
    assert "--state-dir" in unsaved["fix"]

    target = agent.target(pod_uid := new_pod_uid())  # kubelet's directories stay root's
    kubelet = Kubelet(str(agent.socket))
    try:
        request = publish_request(
            str(target), spc="rootdirs", uid=pod_uid, tokens={"vault": vault.jwt()}
        )
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await kubelet.publish(request)
    finally:
        await kubelet.close()
    details = failure.value.details() or ""
    assert re.search(rf"failed to create {re.escape(str(target))}: Permission denied", details)
    assert f"the agent runs as uid {NOBODY}" in details
    assert "--kubelet-root-dir" in details
    assert not target.exists()
    assert agent.events_named("node_publish.failed")[0]["reason"] == "FailedToMount"


def test_root_owned_standalone_dir_is_refused_naming_the_flag(agents: Agents) -> None:
    classes = agents.root / "classes"
    classes.mkdir(mode=0o755)  # root's, readable by all: the classes load, statuses cannot go
    agent = start_unprivileged(
        agents, "--mount-mode=directory", f"--standalone-dir={classes}", ready=False
    )
    assert wait_exit(agent) != 0
    [failed] = agent.events_named("agent.failed")
    assert failed["error"] == (
        f"--standalone-dir: the agent (uid {NOBODY}) cannot write pod statuses under "
        f"{classes / 'status'}: make {classes} writable by the agent's user"
    )
