"""Standalone mode, through the agent's CSI socket against moto: a SecretProviderClass without
``region``, an agent without ``AWS_REGION``, and the node's region from a ``kind: Node``
manifest named like ``--nodeid`` in the standalone directory (docs/aws.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from tests.conftest import AgentHarness
from tests.integration.test_aws_agent import irsa_publish, running_aws_agent
from tests.support.moto import MotoServer, unique
from tests.support.mounts import mounts_under

NODE_MANIFEST = """\
apiVersion: v1
kind: Node
metadata:
  name: {name}
  labels:
    topology.kubernetes.io/region: {region}
"""


@pytest.fixture
async def agent_without_region(
    agent_root: Path, moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[AgentHarness]:
    async with running_aws_agent(agent_root, moto, monkeypatch, None) as harness:
        yield harness


def secret_in(moto: MotoServer, region: str) -> str:
    """A secret that exists in ``region`` only: mounting it proves which region was asked."""
    name = unique("node-region")
    moto.client("secretsmanager", region=region).create_secret(Name=name, SecretString="eu")
    return name


async def test_the_node_manifest_gives_the_region(
    agent_without_region: AgentHarness, moto: MotoServer
) -> None:
    harness = agent_without_region
    secret = secret_in(moto, "eu-west-1")
    nodes = NODE_MANIFEST.format(name="node-b", region="us-east-1") + "---\n"
    nodes += NODE_MANIFEST.format(name="node-a", region="eu-west-1")
    (harness.root / "spc" / "nodes.yaml").write_text(nodes)
    harness.write_spc(
        provider="aws",
        parameters={"objects": f"- {{objectName: {secret}, objectType: secretsmanager}}\n"},
    )
    target = harness.target()
    await harness.kubelet.publish(irsa_publish(target))
    assert Path(target, secret).read_bytes() == b"eu"


async def refused_for_its_region(harness: AgentHarness) -> str:
    """Publish an AWS class without a region: refused INVALID_ARGUMENT, nothing mounted or
    recorded; the error's details."""
    harness.write_spc(
        provider="aws", parameters={"objects": "- {objectName: a, objectType: secretsmanager}\n"}
    )
    target = harness.target()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await harness.kubelet.publish(irsa_publish(target))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert mounts_under(target) == []
    assert harness.agent.table.get(target) is None
    return str(info.value.details())


async def test_without_a_node_manifest_the_error_names_all_three_sources(
    agent_without_region: AgentHarness,
) -> None:
    harness = agent_without_region
    directory = harness.root / "spc"
    assert await refused_for_its_region(harness) == (
        "region: not set: the SecretProviderClass has no 'region' parameter, the agent's "
        f"environment has no AWS_REGION, and node node-a not found in {directory} (standalone "
        "mode reads its labels from a kind: Node manifest named like --nodeid there); set one "
        "of the three"
    )


async def test_a_misspelled_node_manifest_is_named_by_the_error(
    agent_without_region: AgentHarness,
) -> None:
    harness = agent_without_region
    manifest = NODE_MANIFEST.format(name="node-a", region="eu-west-1")
    (harness.root / "spc" / "nodes.yaml").write_text(manifest.replace("kind: Node", "kind: node"))
    assert (
        'named like --nodeid there) (see nodes.yaml: kind: Unsupported value: "node": the agent '
        "reads Node (apiVersion v1); document skipped); set one of the three"
    ) in await refused_for_its_region(harness)
