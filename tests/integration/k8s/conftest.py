"""Kubernetes-mode fixtures: the fake API server, a client of it, the default
SecretProviderClass, and agents started against it (stopped, with their volumes unpublished,
when the test ends)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from agent.k8s.api import KubeApi
from agent.k8s.connection import load_configuration
from tests.fakes.kube.faults import Fault
from tests.fakes.kube.paths import RequestInfo
from tests.fakes.kube_api import FakeKubeApi, secret_provider_class
from tests.support.chart_rbac import ChartRbac
from tests.support.kube_agent import SPC, KubeAgents, KubeHarness, run_agents
from tests.support.kube_credentials import capture_logs


@pytest.fixture
async def api(kube_api: FakeKubeApi) -> AsyncIterator[KubeApi]:
    """A client of the fake API server, as the agent builds its own (closed at the end)."""
    client = KubeApi()
    client.connect(await load_configuration(str(kube_api.kubeconfig_path)))
    yield client
    await client.close()


@pytest.fixture
def log_lines() -> io.StringIO:
    """The agent's JSON log lines at -v=5 (kubernetes_asyncio's debug lines too)."""
    return capture_logs()


@pytest.fixture
async def agents(kube_api: FakeKubeApi, agent_root: Path) -> AsyncIterator[KubeAgents]:
    kube_api.store.put(
        secret_provider_class(
            SPC, provider="fake", parameters={"objects": "- objectName: username"}
        )
    )
    async for running in run_agents(kube_api, agent_root):
        yield running


@pytest.fixture
async def node(agents: KubeAgents) -> KubeHarness:
    """One agent on node-a."""
    return await agents.start()


# Every feature the agent has in Kubernetes mode, so every request it can make is judged.
CHART_FEATURES = ("syncSecret.enabled=true", "tokenRequestFallback=true")


@pytest.fixture(scope="session")
def chart_rbac() -> ChartRbac:
    return ChartRbac.render(CHART_FEATURES)


@pytest.fixture(autouse=True)
def authorized_by_the_chart(kube_api: FakeKubeApi, chart_rbac: ChartRbac) -> Iterator[None]:
    """The fake API server denies (403) what the chart's RBAC would deny, and the test fails
    if the agent asked for anything of that: the chart grants all the agent needs."""
    denied: list[str] = []

    def forbidden(info: RequestInfo) -> bool:
        if chart_rbac.allows(info):
            return False
        denied.append(f"{info.verb} {info.group}/{info.resource_path} {info.namespace}/{info.name}")
        return True

    kube_api.faults.active.insert(0, Fault(predicate=forbidden, status=403, times=None))
    yield
    assert not denied, f"the chart's RBAC does not grant what the agent asked for: {denied}"
