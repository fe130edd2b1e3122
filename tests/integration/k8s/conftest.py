"""Kubernetes-mode fixtures: the fake API server, the default SecretProviderClass, and agents
started against it (stopped, with their volumes unpublished, when the test ends)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes.kube_api import FakeKubeApi, secret_provider_class
from tests.support.kube_agent import SPC, KubeAgents, KubeHarness, run_agents


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
