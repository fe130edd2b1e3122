"""SecretProviderClasses written for hashicorp/vault-csi-provider give the same files here.

Through the real path: a grpcio kubelet publishes on the agent's CSI socket, the agent reads
the SPC file (unquoted YAML as users write it), logs in to a real OpenBao and writes tmpfs.
Expected bytes come from hashicorp's provider source: ``internal/config/config.go`` decodes
``objects`` with gopkg.in/yaml.v3 into string fields (the scalar's text) and an
``os.FileMode``; ``internal/provider/provider.go`` writes a string value raw, any other value
as ``json.Marshal(value)``, the whole response as ``json.Marshal(*api.Secret)`` (vault
``api/secret.go``: field order, ``omitempty``), and decodes with ``base64.StdEncoding`` /
``hex.DecodeString``.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from agent.app import build_agent
from agent.providers.registry import ProviderRegistry
from tests.conftest import AgentHarness, agent_settings
from tests.support.fake_provider import FakeProvider
from tests.support.jwt_signer import JwtSigner
from tests.support.kubelet import Kubelet, publish_request
from tests.support.openbao import OpenBaoServer, VaultWorld, build_world

CERT = b"-----BEGIN CERTIFICATE-----\n" + bytes(range(256)) * 2 + b"\n-----END CERTIFICATE-----\n"
BLOB = bytes(range(256)) * 800  # 200 KiB: a response large enough to be decoded off the loop


def wrapped(data: bytes) -> str:
    """What ``base64 FILE`` prints: 76 columns, then a newline, including after the last line."""
    text = base64.b64encode(data).decode()
    return "".join(text[i : i + 76] + "\n" for i in range(0, len(text), 76))


CERT_WRAPPED = wrapped(CERT)
BANK = {
    "0123": "acct-0123",
    "83": "other",  # what YAML 1.1 makes of an unquoted 0123
    "on": "flag",
    "true": "true-text",  # what YAML 1.1 makes of an unquoted on
    "1.50": "float-text",
    "1.5": "float-value",
    "190:20:30": "sexagesimal-text",
    "685230": "sexagesimal-value",
    "yes": "yes-text",
    "no": "no-text",
    "False": "false-text",
    "2001-12-14": "date-text",
    "0x1F": "hex-text",
    "31": "hex-value",
    "1e3": "exp-text",
    "1000.0": "exp-value",
    "~": "tilde-text",
    "db": {"user": "u", "opts": ["ssl<on>"]},
    "n": 1.5,
    "cert_b64": CERT_WRAPPED,
    "cert_b64_crlf": CERT_WRAPPED.replace("\n", "\r\n"),
    "cert_hex": CERT.hex().upper(),
    "not_b64": "plain text, not base64",
}
LARGE = {"blob": wrapped(BLOB)}
SMALL = {"b": "<x>&", "a": "é", "n": 2}


@pytest.fixture(scope="module")
def world(openbao: OpenBaoServer, jwt_signer: JwtSigner) -> VaultWorld:
    world = build_world(openbao, jwt_signer)
    world.admin.kv_put(world.kv2, "team-a/bank", BANK, version=2)
    world.admin.kv_put(world.kv2, "team-a/small", SMALL, version=2)
    world.admin.kv_put(world.kv2, "team-a/large", LARGE, version=2)
    return world


@pytest.fixture
async def vault_agent(agent_root: Path) -> AsyncIterator[AgentHarness]:
    settings = agent_settings(agent_root)
    registry = ProviderRegistry(
        timeout=settings.provider_timeout, version_key=b"k" * 32, load_entry_points=False
    )
    agent = build_agent(settings, registry=registry)  # the built-in Vault provider
    await agent.start()
    kubelet = Kubelet(settings.socket_path)
    harness = AgentHarness(agent, settings, FakeProvider(), kubelet, agent_root)
    try:
        yield harness
    finally:
        for record in list(agent.table):
            await kubelet.unpublish(record.volume_id, record.target_path)
        await kubelet.close()
        await agent.stop()


def write_spc(harness: AgentHarness, world: VaultWorld, objects: str, parameters: str = "") -> None:
    """The SPC as a user writes it: ``objects`` is raw YAML, unquoted scalars and all."""
    text = f"""\
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: bank
  namespace: {world.namespace}
spec:
  provider: vault
  parameters:
    vaultAddress: {world.server.address}
    roleName: {world.role}
    vaultAuthMountPath: {world.jwt_mount}
{textwrap.indent(parameters, "    ")}
    objects: |
{textwrap.indent(textwrap.dedent(objects), "      ")}
"""
    (harness.root / "spc" / "bank.yaml").write_text(text)


async def publish(harness: AgentHarness, world: VaultWorld, objects: str) -> Path:
    write_spc(harness, world, objects)
    return await publish_written(harness, world)


async def publish_written(harness: AgentHarness, world: VaultWorld) -> Path:
    """Publish pod app-0's volume of the class ``bank`` as it is on disk now."""
    uid = world.pod_uid("app-0")
    target = harness.target(uid=uid)
    request = publish_request(
        target,
        spc="bank",
        pod="app-0",
        namespace=world.namespace,
        uid=uid,
        service_account=world.service_account,
        tokens={"vault": world.jwt(pod_name="app-0", pod_uid=uid)},
    )
    await harness.kubelet.publish(request)
    return Path(target)


async def publish_fails(harness: AgentHarness, world: VaultWorld, objects: str) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await publish(harness, world, objects)
    return info.value.details() or ""


def bank(world: VaultWorld) -> str:
    return f"{world.kv2}/data/team-a/bank"


# ---- 1. unquoted scalars keep their text (yaml.v3 into a string field) ----

UNQUOTED_KEYS = [
    "0123",  # the case: YAML 1.1 reads octal 83, and mounted "other"
    "on",  # the case: YAML 1.1 reads true, and the agent refused it
    "true",
    "1.50",
    "190:20:30",
    "yes",
    "no",
    "False",
    "2001-12-14",
    "0x1F",
    "1e3",
]


async def test_unquoted_secret_keys_mount_the_key_their_text_names(
    vault_agent: AgentHarness, world: VaultWorld
) -> None:
    objects = "".join(
        f"- {{objectName: key-{i}, secretPath: {bank(world)}, secretKey: {key}}}\n"
        for i, key in enumerate(UNQUOTED_KEYS)
    )
    target = await publish(vault_agent, world, objects)
    for i, key in enumerate(UNQUOTED_KEYS):
        assert (target / f"key-{i}").read_text() == BANK[key], key


async def test_unquoted_object_names_are_file_names_as_written(
    vault_agent: AgentHarness, world: VaultWorld
) -> None:
    objects = f"""\
    - objectName: 0123
      secretPath: {bank(world)}
      secretKey: 0123
    - objectName: 1.50
      secretPath: {bank(world)}
      secretKey: on
    """
    target = await publish(vault_agent, world, objects)
    assert sorted(n for n in os.listdir(target) if not n.startswith("..")) == ["0123", "1.50"]
    assert (target / "0123").read_text() == "acct-0123"
    assert (target / "1.50").read_text() == "flag"


async def test_quoted_tilde_is_a_key_but_bare_tilde_means_no_key(
    vault_agent: AgentHarness, world: VaultWorld
) -> None:
    objects = f"""\
    - {{objectName: quoted, secretPath: {bank(world)}, secretKey: "~"}}
    - {{objectName: bare, secretPath: {bank(world)}, secretKey: ~}}
    """
    target = await publish(vault_agent, world, objects)
    assert (target / "quoted").read_text() == "tilde-text"
    # yaml.v3 leaves the string field empty for null: upstream then writes the whole response.
    whole = json.loads((target / "bare").read_bytes())
    assert whole["data"]["data"]["0123"] == "acct-0123"


# ---- filePermission is read as a number, as yaml.v3 reads os.FileMode ----


async def test_file_permission_forms(vault_agent: AgentHarness, world: VaultWorld) -> None:
    objects = f"""\
    - {{objectName: octal, secretPath: {bank(world)}, secretKey: on, filePermission: 0440}}
    - {{objectName: octal-o, secretPath: {bank(world)}, secretKey: on, filePermission: 0o640}}
    - {{objectName: decimal, secretPath: {bank(world)}, secretKey: on, filePermission: 420}}
    - {{objectName: default, secretPath: {bank(world)}, secretKey: on}}
    """
    target = await publish(vault_agent, world, objects)
    modes = {name: stat.S_IMODE(os.stat(target / name).st_mode) for name in ("octal", "octal-o")}
    assert modes == {"octal": 0o440, "octal-o": 0o640}
    assert stat.S_IMODE(os.stat(target / "decimal").st_mode) == 0o644  # 420 == 0o644
    assert stat.S_IMODE(os.stat(target / "default").st_mode) == 0o644


async def test_a_mode_that_is_not_a_number_names_the_field(
    vault_agent: AgentHarness, world: VaultWorld
) -> None:
    objects = f"- {{objectName: a, secretPath: {bank(world)}, filePermission: rw-r--r--}}"
    message = await publish_fails(vault_agent, world, objects)
    assert "objects[0].filePermission: must be an octal number such as 0600" in message
    assert "rw-r--r--" not in message


# ---- 2. base64 and hex as Go's decoders take them ----


async def test_base64_wrapped_at_76_columns_mounts_the_original_bytes(
    vault_agent: AgentHarness, world: VaultWorld
) -> None:
    objects = f"""\
    - {{objectName: cert, secretPath: {bank(world)}, secretKey: cert_b64, encoding: base64}}
    - {{objectName: crlf, secretPath: {bank(world)}, secretKey: cert_b64_crlf, encoding: BASE64}}
    - {{objectName: hex, secretPath: {bank(world)}, secretKey: cert_hex, encoding: hex}}
    """
    target = await publish(vault_agent, world, objects)
    assert CERT_WRAPPED.endswith("\n") and "\n" in CERT_WRAPPED[:-1]
    assert (target / "cert").read_bytes() == CERT
    assert (target / "crlf").read_bytes() == CERT
    assert (target / "hex").read_bytes() == CERT


async def test_a_large_wrapped_base64_secret_mounts_its_bytes(
    vault_agent: AgentHarness, world: VaultWorld
) -> None:
    path = f"{world.kv2}/data/team-a/large"
    objects = f"- {{objectName: blob, secretPath: {path}, secretKey: blob, encoding: base64}}"
    target = await publish(vault_agent, world, objects)
    assert (target / "blob").read_bytes() == BLOB


async def test_a_value_that_is_not_base64_fails_without_echoing_it(
    vault_agent: AgentHarness, world: VaultWorld
) -> None:
    objects = (
        f"- {{objectName: c, secretPath: {bank(world)}, secretKey: not_b64, encoding: base64}}"
    )
    message = await publish_fails(vault_agent, world, objects)
    assert "object 'c': the value of key 'not_b64' is not valid base64" in message
    assert "plain text" not in message
    assert not (vault_agent.target(uid=world.pod_uid("app-0")) + "/c").endswith("x")


# ---- 3. JSON written as hashicorp's provider writes it ----


async def test_a_key_naming_an_object_is_written_as_go_marshals_it(
    vault_agent: AgentHarness, world: VaultWorld
) -> None:
    objects = f"""\
    - {{objectName: db.json, secretPath: {bank(world)}, secretKey: db}}
    - {{objectName: n, secretPath: {bank(world)}, secretKey: n}}
    """
    target = await publish(vault_agent, world, objects)
    # json.Marshal: compact, map keys sorted, <, >, & escaped.
    assert (target / "db.json").read_bytes() == b'{"opts":["ssl\\u003con\\u003e"],"user":"u"}'
    assert (target / "n").read_bytes() == b"1.5"  # the number as Vault wrote it


async def test_without_secret_key_the_file_is_the_api_secret_as_go_marshals_it(
    vault_agent: AgentHarness, world: VaultWorld
) -> None:
    path = f"{world.kv2}/data/team-a/small"
    target = await publish(vault_agent, world, f"- {{objectName: all.json, secretPath: {path}}}")
    written = (target / "all.json").read_bytes()
    seen = json.loads(written)  # only for the values that change per read and per write
    metadata = seen["data"]["metadata"]
    # api.Secret's fields in declaration order; auth, wrap_info and mount_type are omitempty
    # (OpenBao sends "auth":null and "wrap_info":null, which upstream drops); warnings is not.
    request_id, created, version = seen["request_id"], metadata["created_time"], metadata["version"]
    expected = (
        f'{{"request_id":"{request_id}","lease_id":"","lease_duration":0,"renewable":false,'
        '"data":{"data":{"a":"é","b":"\\u003cx\\u003e\\u0026","n":2},'
        f'"metadata":{{"created_time":"{created}","custom_metadata":null,"deletion_time":"",'
        f'"destroyed":false,"version":{version}}}}},"warnings":null}}'
    )
    assert written == expected.encode()


# ---- spec.parameters are strings in the CRD ----


async def test_an_unquoted_boolean_parameter_is_refused_as_the_api_server_would(
    vault_agent: AgentHarness, world: VaultWorld
) -> None:
    write_spc(vault_agent, world, "- {objectName: a, secretPath: p}", "vaultSkipTLSVerify: true")
    uid = world.pod_uid("app-0")
    request = publish_request(
        vault_agent.target(uid=uid),
        spc="bank",
        namespace=world.namespace,
        uid=uid,
        tokens={"vault": world.jwt(pod_name="app-0", pod_uid=uid)},
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await vault_agent.kubelet.publish(request)
    assert (
        'spec.parameters.vaultSkipTLSVerify: Invalid value: "boolean": must be of type string'
        in (info.value.details() or "")
    )
