"""A SecretProviderClass missing from the agent's cache is read on the API client's background
lane by work kubelet does not wait on (secret sync's re-sync pass and census, the rotation
scheduler), and on the publish lane only for a publish: background work never spends the
budget a publish waits for. Against the fake API over HTTP; each GET of a class is recorded
with its lane by the agent's own client."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from agent.k8s.api import Lane
from agent.k8s.resources import Resource
from tests.fakes.kube_api import owner_reference, replica_set
from tests.integration.k8s.test_secret_sync import entry
from tests.support.clock import ManualClock
from tests.support.kube_agent import KubeAgents, KubeHarness, eventually

DB = [entry("db", "Opaque", ("password", "password"))]
SPCS = "secretproviderclasses"


class ClassReads:
    """Every GET of a class the agent's client sends: (class name, lane)."""

    def __init__(self, node: KubeHarness, monkeypatch: pytest.MonkeyPatch) -> None:
        self.seen: list[tuple[str, Lane]] = []
        api = node.cluster.api
        real = api.get

        async def get(resource: Resource, namespace: str | None, name: str, lane: Lane) -> Any:
            if resource.plural == SPCS:
                self.seen.append((name, lane))
            return await real(resource, namespace, name, lane)

        monkeypatch.setattr(api, "get", get)

    def of(self, name: str) -> list[Lane]:
        return [lane for seen, lane in self.seen if seen == name]


async def _forget_class(node: KubeHarness, name: str) -> None:
    node.kube.store.delete(SPCS, "default", name)
    informer = node.cluster.spcs.informer
    await eventually(lambda: informer.get("default", name) is None, f"{name} left the cache")


async def test_sync_reads_a_class_the_cache_lacks_on_the_background_lane(
    agents: KubeAgents, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The class-change pass, a full pass, and the census of a removal (another pod mounts
    a class that is gone) each read the deleted class: all on the background lane."""
    node = await agents.start(clock=ManualClock())
    node.add_spc(secret_objects=DB)
    node.add_spc("other")
    rs = node.kube.store.put(replica_set("web-5d8f"))
    web = await node.add_pod("web-5d8f-aaaaa", owner_references=[owner_reference(rs)])
    await node.publish(web)
    await node.publish(await node.add_pod("other-0", spc="other"), spc="other")
    await node.synced()
    await eventually(lambda: node.secret("db") is not None, "db synced")
    reads = ClassReads(node, monkeypatch)
    await _forget_class(node, "other")
    await eventually(lambda: len(reads.of("other")) == 1, "the class-change pass's read")
    await node.resync()
    assert len(reads.of("other")) == 2
    await node.kubelet.unpublish(node.request(web).volume_id, node.request(web).target_path)
    await node.synced()
    await eventually(lambda: node.secret("db") is None, "db deleted with its last reference")
    assert len(reads.of("other")) == 4  # the census and its recount: does "other" name db?
    assert set(reads.of("other")) == {Lane.BACKGROUND}
    # A publish still reads a class the cache lacks on the publish lane (kubelet waits on it).
    late = node.request(await node.add_pod("late-0", spc="other"), spc="other")
    with pytest.raises(grpc.aio.AioRpcError):
        await node.kubelet.publish(late)  # the class does not exist
    assert reads.of("other")[4:] == [Lane.PUBLISH]


async def test_rotation_reads_a_class_the_cache_lacks_on_the_background_lane(
    agents: KubeAgents, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = ManualClock()
    node = await agents.start(clock=clock, enable_secret_rotation=True, rotation_poll_interval=120)
    await node.publish(await node.add_pod("web-0"))
    await node.synced()
    reads = ClassReads(node, monkeypatch)
    await _forget_class(node, "app-secrets")
    await eventually(lambda: len(reads.of("app-secrets")) == 1, "the class-change pass's read")
    clock.advance(120 * 1.11)
    assert node.agent.rotation is not None
    await node.agent.rotation.settle()
    assert len(reads.of("app-secrets")) == 2  # the rotation's plan read it
    assert set(reads.of("app-secrets")) == {Lane.BACKGROUND}
