"""Rotation end to end: the agent as a subprocess with a short ``--rotation-poll-interval``, a
real OpenBao dev server, real tmpfs mounts. A secret changed in OpenBao reaches the mounted
file within one interval; a refresh-now annotation on the class's manifest brings a change
at once under a long interval. Nothing sleeps for an interval: each test polls for the
observable change with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import (
    AgentProcess,
    Agents,
    VaultSetup,
    mount_cli,
    new_pod_uid,
    unmounted_on_exit,
)

DEADLINE_S = 20.0


def wait_for(condition: Callable[[], bool], what: str, agent: AgentProcess) -> float:
    """Poll ``condition`` until it holds; returns the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < DEADLINE_S:
        if condition():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"{what} within {DEADLINE_S:g}s; agent output:\n{agent.output()[-4000:]}")


def metric(agent: AgentProcess, name: str, **labels: str) -> float:
    status, body = agent.get("metrics", "/metrics")
    assert status == 200
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def test_a_secret_changed_in_openbao_reaches_the_file_within_one_interval(
    agents: Agents, vault: VaultSetup, token_file: Path
) -> None:
    vault.put("app/rotating", {"password": "first-value"})
    objects: list[dict[str, str | int]] = [
        {
            "objectName": "password",
            "secretPath": vault.secret_path("app/rotating"),
            "secretKey": "password",
        }
    ]
    agent = agents.new("--enable-secret-rotation", "--rotation-poll-interval=1s")
    agent.write_spc("rotating", vault.spc_yaml("rotating", objects))
    agent.start()
    agent.wait_ready()
    uid = new_pod_uid()
    target = agent.target(uid)
    with unmounted_on_exit(agent, target):
        published = mount_cli(agent, target, spc="rotating", token_file=token_file, pod_uid=uid)
        assert published.returncode == 0, published.output
        password = target / "password"
        assert password.read_text() == "first-value"
        vault.put("app/rotating", {"password": "second-value"})
        took = wait_for(lambda: password.read_text() == "second-value", "rotated", agent)
        # One interval (1 s) plus its jitter, and the fetch; generous for a loaded machine.
        assert took < 5.0, f"rotation took {took:.2f}s"
        # The files swap in the worker thread; the metric and the log line follow on the loop.
        wait_for(
            lambda: (
                metric(agent, "rotation_reconcile_total", provider="vault", rotated="true") >= 1
            ),
            "the rotation counted",
            agent,
        )
        wait_for(lambda: bool(agent.events_named("rotation.rotated")), "rotation logged", agent)
        rotated = agent.events_named("rotation.rotated")
        assert rotated and rotated[0]["target_path"] == str(target)
        # The status file follows the new KV version.
        (status_file,) = agent.written_status_files(1)
        assert "second-value" not in status_file.read_text()
        assert "first-value" not in agent.output() and "second-value" not in agent.output()


def test_refresh_now_in_the_manifest_rotates_at_once(
    agents: Agents, vault: VaultSetup, token_file: Path
) -> None:
    vault.put("app/on-demand", {"password": "before"})
    objects: list[dict[str, str | int]] = [
        {
            "objectName": "password",
            "secretPath": vault.secret_path("app/on-demand"),
            "secretKey": "password",
        }
    ]
    agent = agents.new(
        "--enable-secret-rotation",
        "--rotation-poll-interval=1h",
        "--rotation-min-poll-interval=0s",
    )
    spc = vault.spc_yaml("on-demand", objects)
    agent.write_spc("on-demand", spc)
    agent.start()
    agent.wait_ready()
    uid = new_pod_uid()
    target = agent.target(uid)
    with unmounted_on_exit(agent, target):
        published = mount_cli(agent, target, spc="on-demand", token_file=token_file, pod_uid=uid)
        assert published.returncode == 0, published.output
        vault.put("app/on-demand", {"password": "after"})
        annotated = spc.replace(
            "  namespace: default\n",
            "  namespace: default\n  annotations:\n"
            "    secrets-store.csi.k8s.io/refresh-now: '2026-11-30T12:00:00Z'\n",
        )
        assert annotated != spc
        agent.write_spc("on-demand", annotated)
        wait_for(lambda: (target / "password").read_text() == "after", "refreshed", agent)
        assert agent.events_named("rotation.refresh_requested")
