"""A cluster whose SecretProviderClass CRD predates v1 (serves only v1alpha1): the agent finds
that out by discovery, caches v1alpha1 classes and mounts them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fakes.kube.crds import CHART_CRDS
from tests.fakes.kube_api import FakeKubeApi, secret_provider_class
from tests.support.kube_agent import KubeAgents, run_agents

SPC_CRD = "secrets-store.csi.x-k8s.io_secretproviderclasses.yaml"
STATUS_CRD = "secrets-store.csi.x-k8s.io_secretproviderclasspodstatuses.yaml"


@pytest.fixture
def kube_api_options(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((CHART_CRDS / SPC_CRD).read_text())
    document["spec"]["versions"] = [
        {**version, "storage": True, "deprecated": False}
        for version in document["spec"]["versions"]
        if version["name"] == "v1alpha1"
    ]
    directory = tmp_path_factory.mktemp("old-crds")
    (directory / SPC_CRD).write_text(yaml.safe_dump(document))
    return {"crd_paths": [directory, CHART_CRDS / STATUS_CRD]}


@pytest.fixture
async def agents(kube_api: FakeKubeApi, agent_root: Path) -> AsyncIterator[KubeAgents]:
    kube_api.store.put(
        secret_provider_class(
            "legacy", provider="fake", parameters={"objects": "x"}, version="v1alpha1"
        )
    )
    async for running in run_agents(kube_api, agent_root):
        yield running


async def test_a_cluster_serving_only_v1alpha1_classes_works(
    agents: KubeAgents, kube_api: FakeKubeApi
) -> None:
    node = await agents.start()
    assert node.cluster.spcs.resource.version == "v1alpha1"
    web = await node.add_pod("web-0", spc="legacy")
    mark = kube_api.requests.mark()
    target = await node.publish(web, spc="legacy")
    await node.settle()
    assert kube_api.requests.since(mark, verb="get", resource="secretproviderclasses") == []
    assert Path(target, "username").exists()
    assert node.status("web-0-default-legacy") is not None
