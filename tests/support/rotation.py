"""An in-process agent with rotation on, a manual clock and several fake providers: rotation
tests advance time by hand and wait for the scheduler to settle, never for time to pass."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agent.app import build_agent
from agent.config import Settings
from agent.lifecycle import Agent
from agent.providers.registry import ProviderFactory, ProviderRegistry
from agent.rotation.scheduler import RotationScheduler
from tests.conftest import agent_settings
from tests.support.clock import ManualClock
from tests.support.fake_provider import FakeProvider
from tests.support.kubelet import Kubelet, kubelet_target, publish_request

SPC = "app-secrets"
INTERVAL = 120.0
SETTLE_TIMEOUT_S = 10.0


def spc_manifest(
    name: str = SPC,
    *,
    provider: str = "fake",
    namespace: str = "default",
    annotations: Mapping[str, str] | None = None,
    parameters: Mapping[str, str] | None = None,
) -> str:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        metadata["annotations"] = dict(annotations)
    document = {
        "apiVersion": "secrets-store.csi.x-k8s.io/v1",
        "kind": "SecretProviderClass",
        "metadata": metadata,
        "spec": {
            "provider": provider,
            "parameters": dict(parameters or {"objects": "- objectName: username"}),
        },
    }
    return yaml.safe_dump(document)


@dataclass
class RotationHarness:
    agent: Agent
    settings: Settings
    clock: ManualClock
    providers: dict[str, FakeProvider]
    kubelet: Kubelet
    root: Path
    published: dict[str, str] = field(default_factory=dict)  # target -> volume id

    @property
    def rotation(self) -> RotationScheduler:
        assert self.agent.rotation is not None
        return self.agent.rotation

    @property
    def provider(self) -> FakeProvider:
        return self.providers["fake"]

    def target(self, uid: str, volume: str = "secrets") -> str:
        """Kubelet's target path; like kubelet, its parent (the volume directory) is made."""
        return kubelet_target(self.root, volume, uid)

    def write_spc(self, name: str = SPC, **options: Any) -> None:
        namespace = options.get("namespace", "default")
        path = self.root / "spc" / f"{namespace}-{name}.yaml"
        path.write_text(spc_manifest(name, **options))

    async def rescan(self) -> None:
        """Standalone mode re-reads its manifests every couple of seconds; tests say when."""
        assert self.agent.manifests is not None
        await self.agent.manifests.rescan()

    async def publish(
        self,
        uid: str,
        *,
        pod: str | None = None,
        service_account: str = "web",
        spc: str = SPC,
        token: str | None = None,
        expires: str = "2099-01-01T00:00:00Z",
        **options: Any,
    ) -> str:
        """Publish (or republish) pod ``uid``'s volume as kubelet does; returns the target."""
        target = self.target(uid)
        request = publish_request(
            target,
            spc=spc,
            pod=pod or f"pod-{uid[:8]}",
            uid=uid,
            service_account=service_account,
            volume_id=f"csi-{uid}",
            **options,
        )
        if token is not None:
            request.volume_context["csi.storage.k8s.io/serviceAccount.tokens"] = json.dumps(
                {"vault": {"token": token, "expirationTimestamp": expires}}
            )
        await self.kubelet.publish(request)
        self.published[target] = request.volume_id
        return target

    async def unpublish(self, target: str) -> None:
        await self.kubelet.unpublish(self.published.pop(target), target)

    async def advance(self, seconds: float) -> None:
        """Move the clock, then wait until the scheduler has done everything now due."""
        self.clock.advance(seconds)
        await self.settle()

    async def settle(self) -> None:
        async with asyncio.timeout(SETTLE_TIMEOUT_S):
            await self.rotation.settle()

    def fetches(self, provider: str = "fake") -> int:
        return len(self.providers[provider].requests)

    def metric(self, name: str, **labels: str) -> float:
        for family in self.agent.metrics.registry.collect():
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return float(sample.value)
        return 0.0


async def eventually(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)
    assert condition(), what


def _handing_out(provider: FakeProvider) -> ProviderFactory:
    return lambda _context: provider


async def rotation_harness(
    root: Path, *providers: str, **overrides: object
) -> AsyncIterator[RotationHarness]:
    """Yields a started agent with ``--enable-secret-rotation`` and a fake provider per name
    (``fake`` by default); unpublishes everything and stops it afterwards."""
    overrides.setdefault("enable_secret_rotation", True)
    overrides.setdefault("rotation_poll_interval", INTERVAL)
    settings = agent_settings(root, **overrides)
    fakes = {name: FakeProvider(name) for name in providers or ("fake",)}
    registry = ProviderRegistry(
        timeout=settings.provider_timeout,
        version_key=b"k" * 32,
        factories={name: _handing_out(fake) for name, fake in fakes.items()},
        load_entry_points=False,
    )
    clock = ManualClock()
    agent = build_agent(settings, registry=registry, clock=clock)
    await agent.start()
    kubelet = Kubelet(settings.socket_path)
    harness = RotationHarness(agent, settings, clock, fakes, kubelet, root)
    harness.write_spc()
    try:
        yield harness
    finally:
        for fake in fakes.values():
            if fake.gate is not None:
                fake.gate.set()
        for record in list(agent.table):
            await kubelet.unpublish(record.volume_id, record.target_path)
        await kubelet.close()
        await agent.stop()
