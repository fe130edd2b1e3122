"""The agent as an operator runs it: ``python -m agent serve`` in its own process, volumes
published with the ``python -m agent mount``/``unmount`` client, secrets from a real OpenBao
dev server, real tmpfs mounts (root only; run under ``unshare -m --propagation private``).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import stat
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import (
    AgentProcess,
    Agents,
    CliResult,
    VaultSetup,
    mount_cli,
    new_pod_uid,
    unmount_cli,
    unmounted_on_exit,
)
from tests.support.mounts import mounts_under

# What a Vault/OpenBao client token looks like (hvs./hvb./hvr. and legacy/OpenBao s.).
TOKEN_SHAPED = re.compile(r"\bhv[sbr]\.[A-Za-z0-9_-]{20,}|\bs\.[A-Za-z0-9]{20,}")
LISTING_LINE = re.compile(r"^  (?P<mode>[-dlrwxsStT]{10}) +(?P<size>\d+)  (?P<name>\S+)$")


def mount_info(target: Path) -> tuple[set[str], str]:
    """(per-mount options, filesystem type) of the mount at ``target`` from mountinfo."""
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        for line in handle:
            left, _, right = line.partition(" - ")
            fields = left.split()
            if fields[4].encode().decode("unicode_escape") == str(target):
                return set(fields[5].split(",")), right.split()[0]
    raise AssertionError(f"{target} is not a mount point")


def listing(result: CliResult) -> dict[str, tuple[str, int]]:
    """The mount client's file listing: {relative path: (mode string, size)}."""
    rows = {}
    for line in result.stdout.splitlines()[1:]:
        match = LISTING_LINE.match(line)
        assert match, f"unexpected line in mount output: {line!r}"
        rows[match["name"]] = (match["mode"], int(match["size"]))
    return rows


def publish_total(agent: AgentProcess) -> float:
    status, body = agent.get("metrics", "/metrics")
    assert status == 200
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == "node_publish_total" and sample.labels == {
                "os_type": "linux",
                "provider": "vault",
            }:
                return float(sample.value)
    return 0.0


def assert_no_token_shaped(text: str) -> None:
    # Report where, never what: a failing test must not print the credential it found.
    found = TOKEN_SHAPED.search(text)
    assert found is None, f"a Vault-token-shaped string at offset {found.start() if found else 0}"


def assert_ok(result: CliResult) -> None:
    assert result.returncode == 0, f"{result.argv[3]} failed:\n{result.output}"


# ---- the happy path ----


def test_publish_republish_unpublish(agents: Agents, vault: VaultSetup, token_file: Path) -> None:
    values = {"username": "app-user", "password": secrets.token_urlsafe(18)}
    vault.put("app/db", values)
    vault.put("app/api", {"key": "api-key-1"})
    path_db, path_api = vault.secret_path("app/db"), vault.secret_path("app/api")
    objects: list[dict[str, str | int]] = [
        {"objectName": "username", "secretPath": path_db, "secretKey": "username"},
        {
            "objectName": "password",
            "secretPath": path_db,
            "secretKey": "password",
            "filePermission": 0o600,
        },
        {"objectName": "api-key", "secretPath": path_api, "secretKey": "key"},
    ]
    agent = agents.start()
    agent.write_spc("app", vault.spc_yaml("app", objects))
    uid = new_pod_uid()
    target = agent.target(uid)

    with unmounted_on_exit(agent, target):
        published = mount_cli(agent, target, spc="app", token_file=token_file, pod_uid=uid)
        assert_ok(published)

        # The client lists names, modes and sizes, never contents.
        assert published.stdout.splitlines()[0] == f"mounted {target}"
        assert listing(published) == {
            "api-key": ("-rw-r--r--", len("api-key-1")),
            "password": ("-rw-------", len(values["password"])),
            "username": ("-rw-r--r--", len("app-user")),
        }
        assert values["password"] not in published.output

        # A tmpfs nobody can run or escalate from, holding exactly the Vault values.
        options, fstype = mount_info(target)
        assert fstype == "tmpfs"
        assert {"nosuid", "nodev", "noexec"} <= options
        assert mounts_under(str(agents.root)) == [str(target)]
        assert (target / "username").read_text() == "app-user"
        assert (target / "password").read_text() == values["password"]
        assert (target / "api-key").read_text() == "api-key-1"
        assert stat.S_IMODE(os.stat(target / "password").st_mode) == 0o600
        assert stat.S_IMODE(os.stat(target / "username").st_mode) == 0o644

        # Upstream's atomic-writer layout: visible names link through ..data to a timestamped dir.
        data_link = target / "..data"
        assert data_link.is_symlink()
        data_dir = os.readlink(data_link)
        assert data_dir.startswith("..") and "/" not in data_dir
        assert (target / data_dir).is_dir() and not (target / data_dir).is_symlink()
        for name in ("username", "password", "api-key"):
            assert os.readlink(target / name) == f"..data/{name}"

        # The pod status names every object with a version.
        (status_file,) = agent.written_status_files(1)
        status = json.loads(status_file.read_text())
        assert status["kind"] == "SecretProviderClassPodStatus"
        assert status["status"]["mounted"] is True
        assert status["status"]["targetPath"] == str(target)
        assert status["status"]["secretProviderClassName"] == "app"
        versions = {o["id"]: o["version"] for o in status["status"]["objects"]}
        assert set(versions) == {"username", "password", "api-key"}
        assert all(versions.values())

        assert publish_total(agent) == 1.0
        assert agent.get("health", "/healthz")[0] == 200
        assert agent.get("health", "/readyz")[0] == 200

        # Rotation is off: republishing after a change in Vault leaves the volume as it is.
        vault.put("app/db", {**values, "username": "changed-user"})
        again = mount_cli(agent, target, spc="app", token_file=token_file, pod_uid=uid)
        assert_ok(again)
        assert (target / "username").read_text() == "app-user"
        assert os.readlink(data_link) == data_dir
        republished_status = json.loads(status_file.read_text())
        assert republished_status["status"]["objects"] == status["status"]["objects"]
        outcomes = [e["outcome"] for e in agent.events_named("node_publish.completed")]
        assert outcomes == ["mounted", "already_mounted"]
        assert publish_total(agent) == 2.0

        unmounted = unmount_cli(agent, target)
        assert_ok(unmounted)
        assert unmounted.stdout.strip() == f"unmounted {target}"
        assert not target.exists()
        assert mounts_under(str(agents.root)) == []
        assert agent.status_files() == []

    assert agent.terminate() == 0


# ---- failures through the client ----


def test_unknown_spc_is_named_and_nothing_is_mounted(agents: Agents, token_file: Path) -> None:
    agent = agents.start()
    target = agent.target(new_pod_uid())

    result = mount_cli(agent, target, spc="no-such-class", token_file=token_file)

    assert result.returncode != 0
    assert "no-such-class" in result.stderr
    assert "not found" in result.stderr
    assert mounts_under(str(agents.root)) == []
    assert agent.status_files() == []
    (failed,) = agent.events_named("node_publish.failed")
    assert failed["reason"] == "SecretProviderClassNotFound"

    # Unmounting what never got mounted succeeds (kubelet's retries rely on that) and says so.
    unmounted = unmount_cli(agent, target)
    assert_ok(unmounted)
    assert unmounted.stdout.strip() == f"nothing was mounted at {target}"
    (unpublished,) = agent.events_named("node_unpublish.completed")
    assert unpublished["outcome"] == "unknown_volume"
    assert None not in unpublished.values()  # no pod=None spc=None ... in kubectl logs
    assert agent.terminate() == 0


def test_path_outside_policy_names_path_and_role_never_credentials(
    agents: Agents, vault: VaultSetup, token_file: Path
) -> None:
    vault.put("other/db", {"password": "not-for-web"})
    denied = vault.secret_path("other/db")
    objects: list[dict[str, str | int]] = [
        {"objectName": "password", "secretPath": denied, "secretKey": "password"}
    ]
    agent = agents.start()
    agent.write_spc("app", vault.spc_yaml("app", objects))
    target = agent.target(new_pod_uid())

    result = mount_cli(agent, target, spc="app", token_file=token_file)

    assert result.returncode != 0
    assert denied in result.stderr
    assert vault.role in result.stderr
    assert "permission denied" in result.stderr
    jwt = token_file.read_text()
    for text in (result.output, agent.output()):
        assert jwt not in text
        assert "not-for-web" not in text
        assert_no_token_shaped(text)
    # The tmpfs mounted for the attempt is gone again, and so is any status.
    assert mounts_under(str(agents.root)) == []
    assert not target.exists() or not os.listdir(target)
    assert agent.status_files() == []
    assert agent.terminate() == 0


# ---- lifecycle ----


def test_sigterm_stops_cleanly_and_a_stale_socket_is_replaced(agents: Agents) -> None:
    agent = agents.start()
    assert stat.S_ISSOCK(os.lstat(agent.socket).st_mode)

    started = time.monotonic()
    assert agent.terminate(timeout=5) == 0
    assert time.monotonic() - started < 5
    assert not agent.socket.exists()
    assert agent.events_named("agent.stopped")

    # A socket file left behind by a crash (bound, never unlinked) must not block the next start.
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(str(agent.socket))
    assert stat.S_ISSOCK(os.lstat(agent.socket).st_mode)
    restarted = agents.start()
    assert restarted.events_named("csi.stale_socket_removed")
    assert restarted.get("health", "/readyz")[0] == 200
    assert restarted.terminate(timeout=5) == 0
    assert not restarted.socket.exists()


def test_a_regular_file_at_the_endpoint_is_never_removed(agents: Agents) -> None:
    agent = agents.new()
    agent.socket.write_text("precious\n")
    agent.start()
    assert agent.process is not None
    returncode = agent.process.wait(timeout=20)

    assert returncode != 0
    assert "--endpoint" in agent.output()
    assert str(agent.socket) in agent.output()
    assert agent.socket.read_text() == "precious\n"


# ---- redaction ----


def test_no_secret_token_or_node_publish_secret_reaches_any_output(
    agents: Agents, vault: VaultSetup, token_file: Path
) -> None:
    """The issue's redaction proof: a full publish at debug verbosity (-v=5, plus
    --debug-loggers to let the HTTP/2 and HTTP libraries' own debug logs through), then every
    byte the agent and the client printed."""
    stored = {f"k{i}": secrets.token_urlsafe(18) for i in range(3)}  # 24 characters each
    node_secrets = {"client-id": secrets.token_urlsafe(18), "client-key": secrets.token_urlsafe(18)}
    vault.put("app/redaction", stored)
    path = vault.secret_path("app/redaction")
    objects = [
        {"objectName": f"file-{key}", "secretPath": path, "secretKey": key} for key in stored
    ]
    # The whole secret (JSON of every key) as one more file, to vary how values travel.
    objects.append({"objectName": "all.json", "secretPath": path})
    agent = agents.start("-v=5", "--debug-loggers=hpack,h2,grpclib,aiohttp")
    agent.write_spc("app", vault.spc_yaml("app", objects))
    agent.write_spc("denied", vault.spc_yaml("denied", [{**objects[0], "secretPath": "x/y"}]))
    uid = new_pod_uid()
    target = agent.target(uid)
    secret_args = [f"--secret={key}={value}" for key, value in node_secrets.items()]
    jwt = token_file.read_text()

    with unmounted_on_exit(agent, target):
        results = [
            mount_cli(
                agent, target, spc="app", token_file=token_file, pod_uid=uid, extra=secret_args
            ),
            mount_cli(
                agent, target, spc="app", token_file=token_file, pod_uid=uid, extra=secret_args
            ),
        ]
        for result in results:
            assert_ok(result)
        assert (target / "file-k0").read_text() == stored["k0"]
        assert json.loads((target / "all.json").read_text())["data"]["data"] == stored
        # The status file is for operators to read: it must hold versions, never values.
        (status_file,) = agent.written_status_files(1)
        status_text = status_file.read_text()
        # A failing publish too: error paths format messages from requests and replies.
        denied_target = agent.target(new_pod_uid())
        failed = mount_cli(
            agent, denied_target, spc="denied", token_file=token_file, extra=secret_args
        )
        assert failed.returncode != 0
        results.append(failed)
        results.append(unmount_cli(agent, target))
        assert_ok(results[-1])
    assert agent.terminate() == 0

    printed = [agent.stdout(), agent.stderr(), status_text, *(r.output for r in results)]
    forbidden = {"JWT": jwt, **node_secrets, **{f"vault value {k}": v for k, v in stored.items()}}
    for text in printed:
        for what, value in forbidden.items():
            assert value not in text, f"{what} leaked"
        assert_no_token_shaped(text)
        # Pieces of the JWT (its signature alone is a credential-grade secret) must not show.
        assert jwt.split(".")[2] not in text

    # Debug verbosity really was on, so the proof covered the chatty paths too.
    events = agent.events()
    assert any(event.get("level") == "debug" for event in events)
    libraries = {str(event.get("logger", "")).split(".")[0] for event in events}
    assert "hpack" in libraries, libraries  # the HTTP/2 stack's lines were really there
    (completed, republished) = agent.events_named("node_publish.completed")
    for key in ("pod", "namespace", "spc", "provider", "target_path", "duration_ms", "outcome"):
        assert key in completed, f"node_publish.completed lacks {key}: {completed}"
    assert completed["pod"] == "web-0"
    assert completed["namespace"] == "default"
    assert completed["spc"] == "app"
    assert completed["provider"] == "vault"
    assert completed["target_path"] == str(target)
    assert completed["outcome"] == "mounted"
    assert isinstance(completed["duration_ms"], int | float)
    assert republished["outcome"] == "already_mounted"
