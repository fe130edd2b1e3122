"""The agent in Kubernetes mode against the fake API server: a harness that seeds pods and
SecretProviderClasses, publishes through the real CSI socket (grpcio), and waits for the
agent's background work (status writes, cleanup) by condition, never by time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent._proto.csi import v1 as csi
from agent.aio.backoff import BackoffPolicy
from agent.aio.clock import Clock
from agent.app import build_agent
from agent.config import Settings
from agent.k8s.adapter import KubernetesAdapter
from agent.lifecycle import Agent
from agent.providers.registry import ProviderRegistry
from agent.sync.syncer import SecretSyncer
from tests.fakes.kube_api import FakeKubeApi, pod, secret_provider_class
from tests.support.fake_provider import FakeProvider
from tests.support.kubelet import Kubelet, kubelet_target, publish_request
from tests.support.mounts import is_root

if TYPE_CHECKING:
    from agent.sync.passes import PassCounts
    from agent.sync.resync import SecretResync

NODE = "node-a"
SPC = "app-secrets"
FAST_RETRIES = BackoffPolicy(initial=0.02, maximum=0.2)

Object = dict[str, Any]


def kube_settings(root: Path, kube: FakeKubeApi, **overrides: object) -> Settings:
    base = Settings(
        endpoint=f"unix://{root}/csi/csi.sock",
        node_id=NODE,
        metrics_addr="127.0.0.1:0",
        health_addr="127.0.0.1:0",
        kubeconfig=str(kube.kubeconfig_path),
        agent_namespace="kube-system",
        mount_mode="tmpfs" if is_root() else "directory",
        tmpfs_size=8 * 1024 * 1024,
        state_dir=str(root / "state"),
        kubelet_root_dir=str(root),
        provider_timeout=5.0,
        shutdown_grace=5.0,
        pod_cleanup_grace_period=0.0,
        cache_sync_timeout=5.0,
    )
    # Values from tests' keywords and parametrize tables, untyped; replace() refuses a wrong name.
    return replace(base, **overrides)  # type: ignore[arg-type]


def fake_registry(provider: FakeProvider) -> ProviderRegistry:
    return ProviderRegistry(
        timeout=5.0,
        version_key=b"node-local-key-" * 2,
        factories={"fake": lambda _ctx: provider},
        load_entry_points=False,
    )


async def eventually(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Wait until ``condition()`` holds (the agent reacts to API events in the background)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)
    assert condition(), what


@dataclass
class KubeHarness:
    agent: Agent
    settings: Settings
    provider: FakeProvider
    kubelet: Kubelet
    kube: FakeKubeApi
    root: Path

    @property
    def cluster(self) -> KubernetesAdapter:
        assert self.agent.cluster is not None
        return self.agent.cluster

    def target(self, uid: str, volume: str = "secrets") -> str:
        """Kubelet's target path; like kubelet, its parent (the volume directory) is made."""
        return kubelet_target(self.root, volume, uid)

    async def add_pod(self, name: str, namespace: str = "default", **options: Any) -> Object:
        """Create a pod on this node and wait until the agent's pod cache has it (kubelet, too,
        publishes only for a pod the API has bound to it)."""
        options.setdefault("node", NODE)
        options.setdefault("spc", SPC)
        stored = self.kube.store.put(pod(name, namespace, **options))
        uid = stored["metadata"]["uid"]
        pods = self.cluster.pods
        assert pods is not None
        if options["node"] == self.settings.node_id:
            await eventually(
                lambda: (
                    (found := pods.informer.get(namespace, name)) is not None and found.uid == uid
                ),
                f"pod {namespace}/{name} in the agent's cache",
            )
        return stored

    def add_spc(self, name: str = SPC, namespace: str = "default", **options: Any) -> Object:
        options.setdefault("provider", "fake")
        options.setdefault("parameters", {"objects": "- objectName: username"})
        return self.kube.store.put(secret_provider_class(name, namespace, **options))

    async def change_spc(self, name: str = SPC, namespace: str = "default", **options: Any) -> None:
        """Replace a class and wait until the agent's cache holds the new version."""
        stored = self.add_spc(name, namespace, **options)
        wanted = tuple(stored["spec"].get("secretObjects") or ())
        informer = self.cluster.spcs.informer

        def cached() -> bool:
            entry = informer.get(namespace, name)
            return getattr(entry, "secret_objects", None) == wanted

        await eventually(cached, f"class {namespace}/{name} updated in the agent's cache")

    def request(
        self, pod_object: Object, *, spc: str = SPC, volume: str = "secrets", **options: Any
    ) -> csi.NodePublishVolumeRequest:
        meta = pod_object["metadata"]
        return publish_request(
            self.target(meta["uid"], volume),
            spc=spc,
            pod=meta["name"],
            namespace=meta["namespace"],
            uid=meta["uid"],
            volume_id=f"csi-{meta['uid']}-{volume}",
            **options,
        )

    async def publish(self, pod_object: Object, **options: Any) -> str:
        request = self.request(pod_object, **options)
        await self.kubelet.publish(request)
        return request.target_path

    async def settle(self) -> None:
        """Until every status write the agent queued has reached the API."""
        await self.cluster.statuses.wait_idle()

    def statuses(self, namespace: str | None = None) -> list[Object]:
        return self.kube.store.list("secretproviderclasspodstatuses", namespace)

    def status(self, name: str, namespace: str = "default") -> Object | None:
        return self.kube.store.get("secretproviderclasspodstatuses", namespace, name)

    def events(self, namespace: str = "default") -> list[Object]:
        return self.kube.store.list("events", namespace)

    async def synced(self) -> None:
        """Until every Secret sync the agent's calls started has finished."""
        assert self.agent.secret_sync is not None
        await self.agent.secret_sync.wait()

    @property
    def secret_resync(self) -> SecretResync:
        """The agent's re-sync loop (Kubernetes mode with secret sync)."""
        assert self.agent.secret_resync is not None
        return self.agent.secret_resync

    @property
    def syncer(self) -> SecretSyncer:
        """The agent's per-volume Secret syncer."""
        jobs = self.agent.secret_sync
        assert jobs is not None and isinstance(jobs.sync, SecretSyncer)
        return jobs.sync

    async def resync(self) -> PassCounts:
        """One periodic re-sync pass, now (no waiting for its interval)."""
        assert self.agent.secret_resync is not None
        return await self.agent.secret_resync.run_once()

    def secret(self, name: str, namespace: str = "default") -> Object | None:
        return self.kube.store.get("secrets", namespace, name)

    async def event(self, reason: str, namespace: str = "default") -> Object:
        """The pod event with ``reason``, once the agent has sent it."""
        await eventually(
            lambda: any(e.get("reason") == reason for e in self.events(namespace)),
            f"a {reason} event",
        )
        return next(e for e in self.events(namespace) if e.get("reason") == reason)


@dataclass
class KubeAgents:
    """Starts agents (one per node, or again after a stop) and stops them all at the end."""

    kube: FakeKubeApi
    root: Path
    running: list[KubeHarness]

    async def start(
        self,
        *,
        node: str = NODE,
        provider: FakeProvider | None = None,
        registry: ProviderRegistry | None = None,
        root: Path | None = None,
        clock: Clock | None = None,
        **overrides: object,
    ) -> KubeHarness:
        base = root or self.root
        settings = kube_settings(base, self.kube, node_id=node, **overrides)
        provider = provider or FakeProvider()
        agent = build_agent(
            settings,
            registry=registry or fake_registry(provider),
            retry_policy=FAST_RETRIES,
            clock=clock,
        )
        try:
            await agent.start()
        except BaseException:
            await agent.stop()
            raise
        harness = KubeHarness(
            agent, settings, provider, Kubelet(settings.socket_path), self.kube, base
        )
        self.running.append(harness)
        return harness

    async def stop(self, harness: KubeHarness, *, unpublish: bool = False) -> None:
        """Stop one agent; its mounts stay unless ``unpublish`` (a restart keeps them)."""
        self.running.remove(harness)
        if unpublish:
            for record in list(harness.agent.table):
                await harness.kubelet.unpublish(record.volume_id, record.target_path)
        await harness.kubelet.close()
        if harness.provider.gate is not None:
            harness.provider.gate.set()
        await harness.agent.stop()


async def run_agents(kube: FakeKubeApi, root: Path) -> AsyncGenerator[KubeAgents, None]:
    agents = KubeAgents(kube, root, [])
    try:
        yield agents
    finally:
        for harness in list(agents.running):
            await agents.stop(harness, unpublish=True)
