"""Shared fixtures: a running agent (in-process, real CSI socket, real tmpfs as root) and a
grpcio kubelet that drives it."""

from __future__ import annotations

import logging
import os
import textwrap
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import structlog

from agent.app import build_agent
from agent.config import Settings
from agent.lifecycle import Agent
from agent.providers.registry import ProviderRegistry
from tests.fakes.kube_api import kube_api, kube_api_options  # noqa: F401

# Shared fixtures: one OpenBao dev server and one JWT signer per run; the cloud fakes per test.
from tests.support.azure import azure, azure_tls  # noqa: F401
from tests.support.fake_provider import FakeProvider
from tests.support.gcp import gcp  # noqa: F401
from tests.support.jwt_signer import jwt_signer  # noqa: F401
from tests.support.kubelet import POD_UID, Kubelet, kubelet_target
from tests.support.moto import moto, moto_tls  # noqa: F401
from tests.support.mounts import force_unmount_under, is_root
from tests.support.openbao import counted, openbao, openbao_tls  # noqa: F401

SPC_YAML = """\
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: {name}
  namespace: {namespace}
spec:
  provider: {provider}
  parameters:
{parameters}
"""


@dataclass
class AgentHarness:
    agent: Agent
    settings: Settings
    provider: FakeProvider
    kubelet: Kubelet
    root: Path

    @property
    def socket(self) -> str:
        return self.settings.socket_path

    async def statuses_written(self) -> None:
        """Until the status files queued so far are on disk: they are written behind the reply."""
        assert self.agent.status_files is not None
        await self.agent.status_files.wait_idle()

    def target(self, volume: str = "secrets", uid: str = POD_UID) -> str:
        """Kubelet's target path for an inline CSI volume; like kubelet, its parent is made."""
        return kubelet_target(self.root, volume, uid)

    def write_spc(
        self,
        name: str = "app-secrets",
        provider: str = "fake",
        namespace: str = "default",
        parameters: dict[str, str] | None = None,
    ) -> None:
        params = parameters if parameters is not None else {"objects": "- objectName: username"}
        body = "\n".join(
            f"    {key}: |\n{textwrap.indent(value, '      ')}" for key, value in params.items()
        )
        text = SPC_YAML.format(
            name=name, namespace=namespace, provider=provider, parameters=body or "    {}"
        )
        (self.root / "spc" / f"{namespace}-{name}.yaml").write_text(text)


def agent_settings(root: Path, **overrides: object) -> Settings:
    (root / "spc").mkdir(parents=True, exist_ok=True)
    base = Settings(
        endpoint=f"unix://{root}/csi/csi.sock",
        node_id="node-a",
        metrics_addr="127.0.0.1:0",
        health_addr="127.0.0.1:0",
        standalone_dir=str(root / "spc"),
        mount_mode="tmpfs" if is_root() else "directory",
        tmpfs_size=8 * 1024 * 1024,
        state_dir=str(root / "state"),
        kubelet_root_dir=str(root),
        provider_timeout=5.0,
        shutdown_grace=5.0,
    )
    # Values from tests' keywords and parametrize tables, untyped; replace() refuses a wrong name.
    return replace(base, **overrides)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _isolated_logging() -> Iterator[None]:
    """A test that configures logging (e.g. through the CLI) must not leave later tests writing to
    its captured, now closed, stream."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def agent_root(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    leaked = force_unmount_under(str(tmp_path))
    assert not leaked, f"test left mounts behind: {leaked}"


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    """Override in a test module to change the agent's settings."""
    return {}


@pytest.fixture
async def harness(
    agent_root: Path, settings_overrides: dict[str, object]
) -> AsyncIterator[AgentHarness]:
    settings = agent_settings(agent_root, **settings_overrides)
    provider = FakeProvider()
    registry = ProviderRegistry(
        timeout=settings.provider_timeout,
        version_key=b"k" * 32,
        factories={"fake": lambda _ctx: provider},
        load_entry_points=False,
    )
    agent = build_agent(settings, registry=registry)
    await agent.start()
    kubelet = Kubelet(settings.socket_path)
    harness = AgentHarness(agent, settings, provider, kubelet, agent_root)
    harness.write_spc()
    try:
        yield harness
    finally:
        # Like kubelet when the pod goes away: unpublish whatever is still mounted.
        for record in list(agent.table):
            await kubelet.unpublish(record.volume_id, record.target_path)
        await kubelet.close()
        if provider.gate is not None:
            provider.gate.set()
        await agent.stop()
        assert not os.path.exists(settings.socket_path), "socket left behind after stop"
