"""End to end: a standalone SecretProviderClass with ``provider: aws`` and a ServiceAccount
manifest beside it, mounted through the agent's CSI socket by a grpcio kubelet, with moto as AWS.
The agent builds the AWS provider itself (the registry's lazy factory, the agent's environment)."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from agent._proto.csi import v1 as csi
from agent.app import build_agent
from tests.conftest import AgentHarness, agent_settings
from tests.fakes.aws_fault_proxy import FaultProxy
from tests.support.fake_provider import FakeProvider
from tests.support.kubelet import Kubelet, publish_request
from tests.support.moto import MotoServer, unique
from tests.support.mounts import is_root, mounts_under

ROLE = "arn:aws:iam::123456789012:role/web"
SERVICE_ACCOUNT = f"""\
apiVersion: v1
kind: ServiceAccount
metadata:
  name: web
  namespace: default
  annotations:
    eks.amazonaws.com/role-arn: {ROLE}
"""


@pytest.fixture
async def aws_agent(
    agent_root: Path, moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[AgentHarness]:
    async with running_aws_agent(agent_root, moto, monkeypatch, "us-east-1") as harness:
        yield harness


@contextlib.asynccontextmanager
async def running_aws_agent(
    agent_root: Path, moto: MotoServer, monkeypatch: pytest.MonkeyPatch, region: str | None
) -> AsyncIterator[AgentHarness]:
    """A standalone agent (``--nodeid node-a``) with the web ServiceAccount manifest, pointed at
    moto; ``region`` is its AWS_REGION (None: unset)."""
    # The operator's way to point the agent at an endpoint: the AWS SDKs' environment.
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.address)
    if region is None:
        monkeypatch.delenv("AWS_REGION", raising=False)
    else:
        monkeypatch.setenv("AWS_REGION", region)
    settings = agent_settings(agent_root)
    agent = build_agent(settings)  # the real registry: "aws" is a built-in factory
    await agent.start()
    kubelet = Kubelet(settings.socket_path)
    harness = AgentHarness(agent, settings, FakeProvider(), kubelet, agent_root)
    (agent_root / "spc" / "serviceaccount.yaml").write_text(SERVICE_ACCOUNT)
    try:
        yield harness
    finally:
        for record in list(agent.table):
            await kubelet.unpublish(record.volume_id, record.target_path)
        await kubelet.close()
        await agent.stop()


def irsa_publish(
    target: str, volume_id: str = "csi-0123456789abcdef"
) -> csi.NodePublishVolumeRequest:
    return publish_request(
        target, tokens={"sts.amazonaws.com": "eyJ.kubelet.token"}, volume_id=volume_id
    )


def mode_of(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


async def test_an_aws_volume_mounts_through_the_socket(
    aws_agent: AgentHarness, moto: MotoServer
) -> None:
    secret, parameter = unique("e2e"), f"/{unique('e2e')}/token"
    document = {"username": "admin", "password": "pa55"}
    version = moto.client("secretsmanager").create_secret(
        Name=secret, SecretString=json.dumps(document)
    )["VersionId"]
    moto.client("ssm").put_parameter(Name=parameter, Value="tok", Type="SecureString")
    objects = f"""\
        - objectName: {secret}
          objectType: secretsmanager
          objectAlias: db.json
          filePermission: "0400"
          jmesPath:
            - {{path: username, objectAlias: username}}
        - objectName: "{parameter}"
          objectType: ssmparameter
        """
    aws_agent.write_spc(provider="aws", parameters={"objects": textwrap.dedent(objects)})
    target = aws_agent.target()
    await aws_agent.kubelet.publish(irsa_publish(target))
    translated = parameter.replace("/", "_")
    assert Path(target, "db.json").read_bytes() == json.dumps(document).encode()
    assert Path(target, "username").read_bytes() == b"admin"
    assert Path(target, translated).read_bytes() == b"tok"
    assert mode_of(os.path.join(target, "db.json")) == 0o400
    assert mode_of(os.path.join(target, translated)) == 0o644
    if is_root():
        assert mounts_under(target) == [target]
    record = aws_agent.agent.table.get(target)
    assert record is not None
    assert {(v.id, v.version) for v in record.versions} == {
        ("db.json", version),
        ("username", version),
        (translated, "1"),
    }


BAD_INPUT = [
    (
        "- {objectName: a, objectType: secretsmanager, objectAlias: x}\n"
        "- {objectName: b, objectType: secretsmanager, objectAlias: x}\n",
        grpc.StatusCode.INVALID_ARGUMENT,
        "objects[1].objectAlias: found duplicate object alias x",
    ),
    (
        "- {objectName: p, objectType: ssmparameter, objectVersion: '1',"
        " objectVersionLabel: stable}\n",
        grpc.StatusCode.INVALID_ARGUMENT,
        "objects[0].objectVersionLabel: ssm parameters can not specify both objectVersion and "
        "objectVersionLabel: p",
    ),
    (
        "- {objectName: a, objectType: keyvault}\n",
        grpc.StatusCode.INVALID_ARGUMENT,
        "objects[0].objectType: Invalid objectType: keyvault",
    ),
    (
        "- {objectName: a, objectType: secretsmanager, jmesPath: [{path: user}]}\n",
        grpc.StatusCode.INVALID_ARGUMENT,
        "objects[0].jmesPath[0].objectAlias: Object alias must be specified for JMES object",
    ),
]


@pytest.mark.parametrize(("objects", "code", "expected"), BAD_INPUT)
async def test_bad_input_names_the_field_and_mounts_nothing(
    aws_agent: AgentHarness, objects: str, code: grpc.StatusCode, expected: str
) -> None:
    aws_agent.write_spc(provider="aws", parameters={"objects": objects})
    target = aws_agent.target()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await aws_agent.kubelet.publish(irsa_publish(target))
    assert info.value.code() == code
    assert expected in (info.value.details() or "")
    assert mounts_under(target) == []
    assert not os.path.exists(target) or os.listdir(target) == []
    assert aws_agent.agent.table.get(target) is None


async def test_jmes_path_on_a_plain_secret_mounts_nothing(
    aws_agent: AgentHarness, moto: MotoServer
) -> None:
    secret = unique("plain")
    moto.client("secretsmanager").create_secret(Name=secret, SecretString="not json")
    aws_agent.write_spc(
        provider="aws",
        parameters={
            "objects": f"- {{objectName: {secret}, objectType: secretsmanager,"
            " jmesPath: [{path: user, objectAlias: user}]}\n"
        },
    )
    target = aws_agent.target()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await aws_agent.kubelet.publish(irsa_publish(target))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"Invalid JSON used with jmesPath in secret: {secret}" in (info.value.details() or "")
    assert "not json" not in (info.value.details() or "")
    assert mounts_under(target) == []


async def test_a_hung_region_is_named_by_the_provider_before_the_agents_deadline(
    agent_root: Path, moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = FaultProxy(moto.address)
    await proxy.start()
    proxy.faults["us-east-1"] = "slow"  # never answers
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.address)
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto.address)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    settings = agent_settings(agent_root, provider_timeout=1.0)
    agent = build_agent(settings)
    await agent.start()
    kubelet = Kubelet(settings.socket_path)
    harness = AgentHarness(agent, settings, FakeProvider(), kubelet, agent_root)
    (agent_root / "spc" / "serviceaccount.yaml").write_text(SERVICE_ACCOUNT)
    harness.write_spc(
        provider="aws", parameters={"objects": "- {objectName: db, objectType: secretsmanager}\n"}
    )
    try:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await kubelet.publish(irsa_publish(harness.target()))
    finally:
        await kubelet.close()
        await agent.stop()
        await proxy.stop()
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # The provider's own message (which regions, what was last heard), not the agent's generic
    # one: the deadline (0.98 of the provider's 0.95 s) ended the last attempt early.
    assert (info.value.details() or "").startswith(
        "AWS (us-east-1) did not answer within 0.931s: secret db (objects[0]): Secrets Manager "
        "GetSecretValue in us-east-1: ConnectionError: no answer within 0."
    )


async def test_a_pod_whose_service_account_has_no_manifest(aws_agent: AgentHarness) -> None:
    aws_agent.write_spc(
        provider="aws", parameters={"objects": "- {objectName: a, objectType: secretsmanager}\n"}
    )
    request = publish_request(
        aws_agent.target(), tokens={"sts.amazonaws.com": "t"}, service_account="ghost"
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await aws_agent.kubelet.publish(request)
    assert "serviceaccount default/ghost not found" in (info.value.details() or "")


async def test_a_long_service_account_name_is_quoted_cut(aws_agent: AgentHarness) -> None:
    """A valid name of 200 characters reaches kubelet's error cut at 80, as other names a
    request brings. Before: echoed whole."""
    aws_agent.write_spc(
        provider="aws", parameters={"objects": "- {objectName: a, objectType: secretsmanager}\n"}
    )
    request = publish_request(
        aws_agent.target(), tokens={"sts.amazonaws.com": "t"}, service_account="s" * 200
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await aws_agent.kubelet.publish(request)
    details = info.value.details() or ""
    assert details.startswith(f"serviceaccount default/{'s' * 80!r}... not found in ")
    assert "s" * 81 not in details


def test_botocore_is_loaded_only_when_a_volume_uses_aws() -> None:
    # A fresh interpreter: building the agent (and its registry) imports no AWS library; the
    # AWS provider's factory imports its package; botocore waits for the first request.
    script = textwrap.dedent(
        """
        import sys
        from agent.providers.registry import ProviderRegistry
        import agent.app
        registry = ProviderRegistry(timeout=5, version_key=b"k", load_entry_points=False)
        assert "botocore" not in sys.modules and "agent.providers.aws" not in sys.modules
        registry.get("aws")
        assert "agent.providers.aws" in sys.modules
        assert "botocore" not in sys.modules
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.stdout.strip() == "ok", done.stderr


def test_botocore_loads_in_a_worker_thread_not_on_the_event_loop(moto: MotoServer) -> None:
    # A fresh interpreter: the first AWS call imports botocore and reads its JSON files (about
    # 0.1 s); each of those must happen off the event loop's thread.
    script = textwrap.dedent(
        """
        import asyncio, sys, threading
        import botocore.loaders  # the module only: its reads are what is watched
        from tests.support.aws import ServiceAccounts, aws_provider, aws_request

        reads = []
        original = botocore.loaders.Loader.load_data_with_path

        def watched(self, name):
            reads.append((name, threading.current_thread() is threading.main_thread()))
            return original(self, name)

        botocore.loaders.Loader.load_data_with_path = watched

        class ImportWatch:
            def find_spec(self, name, path=None, target=None):
                if name == "botocore.auth":  # the signer, and most of botocore with it
                    reads.append((name, threading.current_thread() is threading.main_thread()))
                return None

        sys.meta_path.insert(0, ImportWatch())

        async def main():
            accounts = ServiceAccounts()
            accounts.add("default", "web")
            provider = aws_provider(sys.argv[1], accounts)
            request = aws_request("- {objectName: absent, objectType: secretsmanager}")
            try:
                await provider.mount(request)
            except Exception as err:
                print(type(err).__name__)
            await provider.close()

        assert "botocore.auth" not in sys.modules
        asyncio.run(main())
        on_loop = sorted(name for name, main_thread in reads if main_thread)
        assert "botocore.auth" in [name for name, _ in reads]
        print("reads", len(reads), "on the loop", on_loop)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, moto.address],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=Path(__file__).parents[2],
    )
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "AwsApiError", done.stderr  # ResourceNotFoundException: it did call AWS
    assert lines[-1].startswith("reads ") and lines[-1].endswith("on the loop []"), lines
    assert not lines[-1].startswith("reads 0 "), lines
