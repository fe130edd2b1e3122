"""Kubernetes mode, through the agent's CSI socket against moto and the fake API server: an
``aws`` SecretProviderClass without ``region``, an agent without ``AWS_REGION``, and the region
from the ``topology.kubernetes.io/region`` label of the agent's Node (``--nodeid``), as ASCP
reads it. The real registry builds the AWS provider with the adapter's node labels."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from agent.providers.registry import ProviderRegistry
from tests.fakes.kube_api import FakeKubeApi, node, service_account
from tests.support.kube_agent import KubeAgents, KubeHarness
from tests.support.moto import MotoServer, unique
from tests.support.mounts import mounts_under

REGION = "topology.kubernetes.io/region"
ROLE = "arn:aws:iam::123456789012:role/web"
TOKENS = {"sts.amazonaws.com": "eyJ.kubelet.token"}


@pytest.fixture
async def aws_node(
    agents: KubeAgents, kube_api: FakeKubeApi, moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> KubeHarness:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.address)
    monkeypatch.delenv("AWS_REGION", raising=False)
    kube_api.store.put(service_account("web", annotations={"eks.amazonaws.com/role-arn": ROLE}))
    registry = ProviderRegistry(timeout=5.0, version_key=b"k" * 32, load_entry_points=False)
    return await agents.start(registry=registry)


def aws_class(harness: KubeHarness, secret: str, name: str = "aws") -> None:
    objects = f"- {{objectName: {secret}, objectType: secretsmanager}}\n"
    harness.add_spc(name, provider="aws", parameters={"objects": objects})


async def test_the_nodes_region_label_is_read_once(
    aws_node: KubeHarness, kube_api: FakeKubeApi, moto: MotoServer
) -> None:
    kube_api.store.put(node("node-a", labels={REGION: "eu-west-1"}))
    secret = unique("node-region")
    # Only in eu-west-1: mounting it proves the label's region was asked.
    moto.client("secretsmanager", region="eu-west-1").create_secret(Name=secret, SecretString="x")
    aws_class(aws_node, secret)
    first, second = await aws_node.add_pod("web-0", spc="aws"), await aws_node.add_pod("web-1")

    for pod in (first, second):
        target = await aws_node.publish(pod, spc="aws", service_account="web", tokens=TOKENS)
        assert Path(target, secret).read_bytes() == b"x"
    assert kube_api.requests.count(verb="get", resource="nodes") == 1


async def test_a_node_without_the_label_names_all_three_sources(
    aws_node: KubeHarness, kube_api: FakeKubeApi
) -> None:
    kube_api.store.put(node("node-a"))
    aws_class(aws_node, "db")
    pod = await aws_node.add_pod("web-0", spc="aws")
    request = aws_node.request(pod, spc="aws", service_account="web", tokens=TOKENS)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await aws_node.kubelet.publish(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == (
        "region: not set: the SecretProviderClass has no 'region' parameter, the agent's "
        f"environment has no AWS_REGION, and node node-a has no {REGION} label; set one of "
        "the three"
    )
    assert mounts_under(request.target_path) == []


async def test_a_forbidden_node_read_names_the_rbac_rule(
    aws_node: KubeHarness, kube_api: FakeKubeApi
) -> None:
    kube_api.store.put(node("node-a", labels={REGION: "eu-west-1"}))
    kube_api.faults.fail(403, verb="get", resource="nodes")
    aws_class(aws_node, "db")
    pod = await aws_node.add_pod("web-0", spc="aws")
    request = aws_node.request(pod, spc="aws", service_account="web", tokens=TOKENS)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await aws_node.kubelet.publish(request)
    details = info.value.details() or ""
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert details.startswith(
        "region: not set by the SecretProviderClass nor by AWS_REGION, and the node's "
        f"{REGION} label could not be read: get nodes node-a: HTTP 403 Forbidden: "
    )
    assert details.endswith(
        "the agent may not read its Node; the chart's ClusterRole grants it (rule: nodes get, "
        "installed with rbac.install=true); without the chart, grant get on nodes to the "
        "agent's service account"
    )
    assert mounts_under(request.target_path) == []
