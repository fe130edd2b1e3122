"""Mistakes an application developer makes in a Vault SecretProviderClass, seen the way they see
them: kubelet's error (through the real CSI socket, grpcio client) names the field in one line,
the class owner's warning in the agent log names the class, and nothing is left on the node.

The agent runs standalone against a real OpenBao with a real tmpfs (as root).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import grpc
import pytest
from structlog.testing import capture_logs

from tests.conftest import AgentHarness
from tests.integration.test_vault_compat import (  # noqa: F401
    publish,
    publish_written,
    vault_agent,
    write_spc,
)
from tests.support.jwt_signer import JwtSigner
from tests.support.mounts import mounts_under
from tests.support.openbao import OpenBaoServer, VaultWorld, build_world

PASSWORD = "pa55-w0rd-never-shown"


@pytest.fixture(scope="module")
def world(openbao: OpenBaoServer, jwt_signer: JwtSigner) -> VaultWorld:
    world = build_world(openbao, jwt_signer)
    world.admin.kv_put(world.kv2, "team-a/db", {"password": PASSWORD, "user": "app"}, version=2)
    return world


@pytest.fixture
def logs() -> Iterator[list[MutableMapping[str, Any]]]:
    with capture_logs() as entries:
        yield entries


def db(world: VaultWorld) -> str:
    return f"{world.kv2}/data/team-a/db"


async def refused(harness: AgentHarness, world: VaultWorld, objects: str) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await publish(harness, world, objects)
    assert_nothing_left(harness, world)
    return info.value


def assert_nothing_left(harness: AgentHarness, world: VaultWorld) -> None:
    volume = Path(harness.target(uid=world.pod_uid("app-0"))).parent
    assert os.listdir(volume) == []
    assert mounts_under(str(harness.root / "pods")) == []
    assert list(harness.agent.table) == []


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("..data", "must not start with '..' (reserved for the writer)"),
        ("..2026_01_01_00_00_00.0", "must not start with '..' (reserved for the writer)"),
        ("a//b", "'a/b'"),
        ("./a", "'a'"),
        ("a\\b", "must not contain a backslash"),
    ],
)
async def test_an_object_name_the_writer_refuses_names_the_field_before_vault_is_asked(
    vault_agent: AgentHarness,  # noqa: F811
    world: VaultWorld,
    logs: list[MutableMapping[str, Any]],
    name: str,
    problem: str,
) -> None:
    objects = f"- {{objectName: '{name}', secretPath: {db(world)}, secretKey: password}}"
    error = await refused(vault_agent, world, objects)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = error.details() or ""
    assert details.startswith("objects[0].objectName: ")
    assert problem in details
    assert "\n" not in details
    assert not [entry for entry in logs if entry["event"] == "vault.login"]


async def test_a_misspelled_objects_parameter_is_named(
    vault_agent: AgentHarness,  # noqa: F811
    world: VaultWorld,
) -> None:
    objects = f"- {{objectName: a, secretPath: {db(world)}, secretKey: password}}"
    text = (vault_agent.root / "spc").joinpath("bank.yaml")
    write_spc(vault_agent, world, objects)
    text.write_text(text.read_text().replace("    objects: |", "    objetcs: |"))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await publish_written(vault_agent, world)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == (
        "objects: is required (a YAML list of objectName, secretPath, secretKey); "
        "spec.parameters has 'objetcs': misspelled?"
    )
    assert_nothing_left(vault_agent, world)


async def test_an_ignored_field_is_warned_once_naming_the_class_and_pod(
    vault_agent: AgentHarness,  # noqa: F811
    world: VaultWorld,
    logs: list[MutableMapping[str, Any]],
) -> None:
    objects = f"- {{objectName: pw, secretPath: {db(world)}, secretKey: password, mode: 0400}}"
    for _ in range(3):  # as rotation would: the same class parsed again and again
        target = await publish(vault_agent, world, objects)
        assert (target / "pw").read_text() == PASSWORD
        await vault_agent.kubelet.unpublish("csi-0123456789abcdef", str(target))
    warnings = [entry for entry in logs if entry["event"] == "vault.config_warning"]
    assert warnings == [
        {
            "event": "vault.config_warning",
            "log_level": "warning",
            "provider": "vault",
            "namespace": world.namespace,
            "spc": "bank",
            "pod": "app-0",
            "warning": "objects[0]: unknown field 'mode' ignored",
        }
    ]
    assert PASSWORD not in repr(logs)


async def test_at_v0_a_publish_is_one_line_and_the_provider_summary_is_debug(
    vault_agent: AgentHarness,  # noqa: F811
    world: VaultWorld,
    logs: list[MutableMapping[str, Any]],
) -> None:
    """``-v=0`` shows one line per publish (plus the pod's Vault login); the provider's own
    summary repeats it and, since rotation calls the provider too, would add a line per volume
    at every poll even when nothing changed (``rotation.fetched`` is ``-v=1`` for that reason)."""
    objects = f"- {{objectName: pw, secretPath: {db(world)}, secretKey: password}}"
    await publish(vault_agent, world, objects)
    shown = [entry["event"] for entry in logs if entry["log_level"] != "debug"]
    assert shown == ["vault.login", "node_publish.completed"]
    assert [e["log_level"] for e in logs if e["event"] == "vault.mount.completed"] == ["debug"]
