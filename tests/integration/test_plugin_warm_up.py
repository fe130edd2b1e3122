"""Plugin warm-up at start: a plugin socket that accepts connections but never answers delays
serving by the warm-up budget at most; the agent then serves, and the plugin's channel is left
to connect on its first publish."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from structlog.testing import capture_logs

import agent.lifecycle
from agent._proto.csi import v1 as csi
from agent.app import build_agent
from agent.config import Settings
from agent.providers.registry import ProviderRegistry
from tests.conftest import agent_settings
from tests.support.fake_provider import FakeProvider
from tests.support.kubelet import Kubelet
from tests.support.plugin_server import FakePlugin

WARM_UP_EVENTS = ("provider.plugin_warm_up_timeout", "provider.plugin_warm_up_failed")


def hung_plugin(path: Path) -> socket.socket:
    """A plugin socket whose connections queue in the kernel: nothing accepts or answers."""
    hung = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    hung.bind(str(path))
    hung.listen(8)
    return hung


def plugin_registry(settings: Settings, plugins: Path) -> ProviderRegistry:
    return ProviderRegistry(
        timeout=settings.provider_timeout,
        version_key=b"k" * 32,
        factories={"fake": lambda _ctx: FakeProvider()},
        load_entry_points=False,
        plugin_directories=[str(plugins)],
    )


async def test_a_hung_plugin_delays_serving_by_the_budget_only(
    agent_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugins = agent_root / "providers"
    plugins.mkdir(mode=0o755)
    hung = hung_plugin(plugins / "hung.sock")
    monkeypatch.setattr(agent.lifecycle, "WARM_UP_BUDGET_SECONDS", 0.05)
    settings = agent_settings(agent_root)
    node = build_agent(settings, registry=plugin_registry(settings, plugins))
    try:
        with capture_logs() as logs:
            await node.start()
        events = [e["event"] for e in logs if e["event"] in WARM_UP_EVENTS]
        assert events == ["provider.plugin_warm_up_timeout"]
        kubelet = Kubelet(settings.socket_path)
        try:
            reply = await kubelet.call("Identity", "Probe", csi.ProbeRequest(), csi.ProbeResponse)
            assert reply is not None, "the CSI socket serves after the budget"
        finally:
            await kubelet.close()
    finally:
        await node.stop()
        hung.close()


async def test_a_hung_plugin_does_not_keep_the_others_cold(
    agent_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plugins are warmed side by side: 'a-hung' sorts first, yet 'b-good' answers its Version
    call within the budget (warmed one after another, the hung one used it all up)."""
    plugins = agent_root / "providers"
    plugins.mkdir(mode=0o755)
    hung = hung_plugin(plugins / "a-hung.sock")
    good = FakePlugin(str(plugins / "b-good.sock"), relay=False)
    await good.start()
    monkeypatch.setattr(agent.lifecycle, "WARM_UP_BUDGET_SECONDS", 1.0)
    settings = agent_settings(agent_root)
    node = build_agent(settings, registry=plugin_registry(settings, plugins))
    try:
        await node.start()
        assert good.version_calls == 1
    finally:
        await node.stop()
        await good.stop()
        hung.close()
