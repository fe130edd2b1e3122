"""The lines docs/troubleshooting.md shows are the lines the agent prints.

Each scenario reproduces one of upstream's most common failures (reference
``upstream-driver.md`` §16) through the agent's CSI socket in Kubernetes mode (fake API
server, real tmpfs as root, the real plugin client and Vault provider where they decide the
text), captures the JSON log line it prints and compares it with the line the document shows
under ``<!-- troubleshooting-line: NAME -->``: every key the document shows must be printed
with that value (only the time, the duration and the temporary directory differ), and every
failure line names the pod, namespace, class, provider, reason, and the fix.
Set ``SSA_PRINT_TROUBLESHOOTING_LINES=1`` to print the captured lines (to update the page).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from agent.logs import configure_logging
from agent.providers.factories import BUILTIN_FACTORIES
from agent.providers.registry import ProviderRegistry
from tests.fakes.kube_api import FakeKubeApi
from tests.integration.k8s.test_secret_sync import entry
from tests.support.clock import ManualClock
from tests.support.kube_agent import KubeAgents, KubeHarness
from tests.support.plugin_server import FakePlugin

DOC = Path(__file__).resolve().parents[3] / "docs" / "troubleshooting.md"
MARKER = re.compile(r"<!-- troubleshooting-line: ([a-z0-9-]+) -->\s*```json\n(.*?)\n```", re.S)
# Differ from run to run: when, how long, and the test's temporary directory.
VOLATILE = {"ts", "duration_ms", "target_path", "retry_in_s"}
SHOWN_ROOT = "/var/lib/kubelet"
# Upstream's default provider directories; nothing listens there in the test environment.
PROVIDER_DIRS = (
    "/etc/kubernetes/secrets-store-csi-providers",
    "/var/run/secrets-store-csi-providers",
)
FAILURE_KEYS = {"pod", "namespace", "spc", "provider", "reason", "error", "fix"}

Scenario = Callable[[KubeAgents, FakeKubeApi, Path], Awaitable[None]]


def documented_lines() -> dict[str, dict[str, Any]]:
    return {name: json.loads(text) for name, text in MARKER.findall(DOC.read_text())}


class Lines:
    """The agent's JSON log lines, as ``kubectl logs`` shows them."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        configure_logging(json=True, verbosity=0, stream=self.stream)

    def find(self, event: str, root: Path) -> dict[str, Any]:
        found = [
            line
            for line in map(json.loads, self.stream.getvalue().splitlines())
            if line["event"] == event
        ]
        assert found, f"no {event} line"
        text = json.dumps(found[-1]).replace(f"{root}/providers", PROVIDER_DIRS[1])
        text = text.replace(str(root), SHOWN_ROOT)
        return dict(json.loads(text))


def plugins_only(directories: tuple[str, ...]) -> ProviderRegistry:
    """No built-in provider (all turned off): every name is an upstream plugin socket."""
    return ProviderRegistry(
        timeout=5.0,
        version_key=b"k" * 32,
        factories={},
        load_entry_points=False,
        plugin_directories=directories,
    )


async def publish_refused(node: KubeHarness, request: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError):
        await node.kubelet.publish(request)


async def spc_not_found(agents: KubeAgents, kube: FakeKubeApi, root: Path) -> None:
    node = await agents.start()
    pod = await node.add_pod("web-0", spc="app-secrets-v2")
    await publish_refused(node, node.request(pod, spc="app-secrets-v2"))


async def provider_not_found(agents: KubeAgents, kube: FakeKubeApi, root: Path) -> None:
    registry = plugins_only(PROVIDER_DIRS)
    node = await agents.start(registry=registry)
    node.add_spc(provider="akeyless")
    pod = await node.add_pod("web-0")
    await publish_refused(node, node.request(pod))


async def message_too_large(agents: KubeAgents, kube: FakeKubeApi, root: Path) -> None:
    plugin_dir = root / "providers"
    plugin_dir.mkdir()
    plugin = FakePlugin(str(plugin_dir / "azure.sock"))
    plugin.padding = 5 * 1024 * 1024
    await plugin.start()
    try:
        registry = plugins_only((str(plugin_dir),))
        node = await agents.start(registry=registry)
        node.add_spc(provider="azure", parameters={"objects": "array:\n  - |\n    objectName: tls"})
        pod = await node.add_pod("web-0")
        await publish_refused(node, node.request(pod))
    finally:
        await plugin.stop()


async def provider_timeout(agents: KubeAgents, kube: FakeKubeApi, root: Path) -> None:
    node = await agents.start(provider_timeout=0.2)
    node.provider.gate = asyncio.Event()
    pod = await node.add_pod("web-0")
    await publish_refused(node, node.request(pod))


async def token_audience_missing(agents: KubeAgents, kube: FakeKubeApi, root: Path) -> None:
    registry = ProviderRegistry(
        timeout=5.0,
        version_key=b"k" * 32,
        factories={"vault": BUILTIN_FACTORIES["vault"]},
        options={"vault_address": "https://vault.vault.svc:8200"},
        load_entry_points=False,
    )
    node = await agents.start(registry=registry)
    node.add_spc(
        provider="vault",
        parameters={
            "roleName": "web",
            "objects": (
                "- objectName: db-password\n  secretPath: secret/data/db\n  secretKey: password"
            ),
        },
    )
    pod = await node.add_pod("web-0")
    await publish_refused(node, node.request(pod, tokens={"sts.amazonaws.com": "eyJ.x.y"}))


async def sync_forbidden(agents: KubeAgents, kube: FakeKubeApi, root: Path) -> None:
    node = await agents.start()
    kube.faults.fail(403, resource="secrets", times=None)
    node.add_spc(secret_objects=[entry("db", "Opaque", ("password", "password"))])
    await node.publish(await node.add_pod("web-0"))
    await node.synced()


async def kubelet_root_mismatch(agents: KubeAgents, kube: FakeKubeApi, root: Path) -> None:
    os.environ["POD_UID"] = "5c0ffee0-aaaa-4bbb-8ccc-0123456789ab"
    try:
        await agents.start()
    finally:
        del os.environ["POD_UID"]


async def pod_info_missing(agents: KubeAgents, kube: FakeKubeApi, root: Path) -> None:
    node = await agents.start()
    pod = await node.add_pod("web-0")
    request = node.request(pod)
    for key in list(request.volume_context):
        if key.startswith("csi.storage.k8s.io/"):
            del request.volume_context[key]
    await publish_refused(node, request)


async def not_read_only(agents: KubeAgents, kube: FakeKubeApi, root: Path) -> None:
    node = await agents.start()
    pod = await node.add_pod("web-0")
    await publish_refused(node, node.request(pod, readonly=False))


async def rotation_plugin_gone(agents: KubeAgents, kube: FakeKubeApi, root: Path) -> None:
    """The provider's DaemonSet pod restarts while volumes are mounted: the next rotation."""
    plugin_dir = root / "providers"
    plugin_dir.mkdir()
    plugin = FakePlugin(str(plugin_dir / "akeyless.sock"))
    await plugin.start()
    registry = plugins_only((str(plugin_dir),))
    clock = ManualClock()
    node = await agents.start(
        registry=registry, clock=clock, enable_secret_rotation=True, rotation_poll_interval=120.0
    )
    node.add_spc(provider="akeyless", parameters={"objects": "array:\n  - |\n    objectName: db"})
    await node.publish(await node.add_pod("web-0"))
    await plugin.stop()
    clock.advance(140.0)
    assert node.agent.rotation is not None
    await node.agent.rotation.settle()


# name -> (scenario, the event of the line, its reason)
SCENARIOS: dict[str, tuple[Scenario, str, str]] = {
    "spc-not-found": (spc_not_found, "node_publish.failed", "SecretProviderClassNotFound"),
    "provider-not-found": (provider_not_found, "node_publish.failed", "ProviderNotFound"),
    "message-too-large": (message_too_large, "node_publish.failed", "GRPCProviderError"),
    "provider-timeout": (provider_timeout, "node_publish.failed", "GRPCProviderError"),
    "token-audience-missing": (
        token_audience_missing,
        "node_publish.failed",
        "GRPCProviderError",
    ),
    "sync-forbidden": (sync_forbidden, "secret_sync.failed", "FailedToCreateSecret"),
    "kubelet-root-mismatch": (kubelet_root_mismatch, "agent.kubelet_root_dir_mismatch", ""),
    "pod-info-missing": (pod_info_missing, "node_publish.failed", "FailedToMount"),
    "not-read-only": (not_read_only, "node_publish.failed", "FailedToMount"),
    "rotation-plugin-gone": (rotation_plugin_gone, "rotation.failed", "GRPCProviderError"),
}


def test_the_page_shows_every_scenario_once() -> None:
    assert set(documented_lines()) == set(SCENARIOS)
    assert len(MARKER.findall(DOC.read_text())) == len(SCENARIOS)


@pytest.mark.parametrize("name", SCENARIOS)
async def test_the_documented_line_is_what_the_agent_prints(
    name: str, agents: KubeAgents, kube_api: FakeKubeApi, agent_root: Path
) -> None:
    scenario, event, reason = SCENARIOS[name]
    lines = Lines()
    await scenario(agents, kube_api, agent_root)
    printed = lines.find(event, agent_root)
    if os.environ.get("SSA_PRINT_TROUBLESHOOTING_LINES"):
        print(f"\n{name}: {json.dumps(printed)}")

    assert "fix" in printed, "every documented failure says what to do"
    if event != "agent.kubelet_root_dir_mismatch":
        assert FAILURE_KEYS - {"provider"} <= set(printed), printed
        assert printed["reason"] == reason and "provider" in printed
    shown = documented_lines()[name]
    differing = {
        key: (value, printed.get(key))
        for key, value in shown.items()
        if key not in VOLATILE and printed.get(key) != value
    }
    assert differing == {}, "docs/troubleshooting.md shows a line the agent does not print"
    assert set(printed) - VOLATILE <= set(shown), "the page leaves out keys the agent prints"
