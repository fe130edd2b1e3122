"""A third-party in-process provider (tests/example_provider, a real package with its own
pyproject.toml) installed into this test run and mounted through the agent's CSI socket.

"Installed" the way pip installs it, minus the copy: a ``.dist-info`` directory whose
``entry_points.txt`` is generated from the example's pyproject.toml, on ``sys.path`` beside the
package, so ``importlib.metadata`` finds the entry point exactly as for a pip install."""

from __future__ import annotations

import textwrap
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.app import build_agent
from agent.providers.factories import ENTRY_POINT_GROUP
from agent.providers.registry import ProviderRegistry
from tests.conftest import AgentHarness, agent_settings
from tests.support.fake_provider import FakeProvider
from tests.support.kubelet import Kubelet, publish_request

EXAMPLE = Path(__file__).parent.parent / "example_provider"


@pytest.fixture
def example_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    site = tmp_path / "site-packages"
    dist_info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    group = project["entry-points"][ENTRY_POINT_GROUP]
    lines = [f"[{ENTRY_POINT_GROUP}]", *(f"{name} = {value}" for name, value in group.items())]
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    monkeypatch.syspath_prepend(str(EXAMPLE))  # the package itself
    monkeypatch.syspath_prepend(str(site))  # its metadata (invalidates import caches too)


@pytest.fixture
async def agent_with_example(
    agent_root: Path, example_installed: None
) -> AsyncIterator[AgentHarness]:
    settings = agent_settings(agent_root)
    agent = build_agent(settings)  # the default registry loads entry points
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


async def test_the_example_provider_mounts_through_the_socket(
    agent_with_example: AgentHarness,
) -> None:
    assert "greeting" in agent_with_example.agent.providers.names()
    objects = textwrap.dedent(
        """\
        - objectName: hello.txt
        - {objectName: hola.txt, greeting: Hola}
        """
    )
    agent_with_example.write_spc(provider="greeting", parameters={"objects": objects})
    target = agent_with_example.target()
    await agent_with_example.kubelet.publish(publish_request(target))
    assert Path(target, "hello.txt").read_text() == "Hello, default/web-0!"
    assert Path(target, "hola.txt").read_text() == "Hola, default/web-0!"


def test_a_builtin_keeps_its_name_over_an_entry_point(
    example_installed: None, tmp_path: Path
) -> None:
    builtin = FakeProvider("greeting")
    registry = ProviderRegistry(
        timeout=5.0, version_key=b"k", factories={"greeting": lambda _ctx: builtin}
    )
    assert registry.get("greeting") is builtin
