"""Who keeps a synced Secret alive, through the agent's socket against the fake API: each
consumer pod is an owner while it mounts the volume, on any node; the last one to go takes
the Secret with it (also by garbage collection while the agent is down); a user's own Secret
is never touched; a Secret deleted by hand comes back at the next re-sync; one the class no
longer names goes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.kube_api import FakeKubeApi, secret
from tests.integration.k8s.test_secret_sync import consumers, data_of, entry
from tests.support.kube_agent import KubeAgents, KubeHarness, eventually

DB = [entry("db", "Opaque", ("password", "password"))]


@pytest.fixture
async def two_nodes(agents: KubeAgents, tmp_path: Path) -> tuple[KubeHarness, KubeHarness]:
    """Agents on node-a and node-b, and a class syncing the Secret db."""
    node_a = await agents.start(root=tmp_path / "a")
    node_b = await agents.start(node="node-b", root=tmp_path / "b")
    node_a.add_spc(secret_objects=DB)
    return node_a, node_b


async def _unpublish(node: KubeHarness, pod: dict[str, object], target: str) -> None:
    await node.kubelet.unpublish(node.request(pod).volume_id, target)
    await node.synced()


async def test_owners_follow_consumers_across_nodes_and_the_last_one_takes_the_secret(
    two_nodes: tuple[KubeHarness, KubeHarness],
) -> None:
    node_a, node_b = two_nodes
    web_0, web_1 = await node_a.add_pod("web-0"), await node_a.add_pod("web-1")
    web_2 = await node_b.add_pod("web-2", node="node-b")
    target_0 = await node_a.publish(web_0)
    await node_a.synced()
    assert consumers(node_a.secret("db")) == ["web-0"]
    target_1 = await node_a.publish(web_1)
    target_2 = await node_b.publish(web_2)
    await node_a.synced()
    await node_b.synced()
    assert sorted(consumers(node_a.secret("db"))) == ["web-0", "web-1", "web-2"]
    shared = node_a.secret("db")
    assert shared is not None
    assert all("controller" not in ref for ref in shared["metadata"]["ownerReferences"])

    await _unpublish(node_a, web_0, target_0)
    assert sorted(consumers(node_a.secret("db"))) == ["web-1", "web-2"]
    # A pod deleted from the API: the pod informer releases its volume, and its reference.
    node_a.kube.store.delete("pods", "default", "web-1")
    await eventually(lambda: node_a.agent.table.get(target_1) is None, "web-1 released")
    await node_a.synced()
    assert consumers(node_a.secret("db")) == ["web-2"]
    await _unpublish(node_b, web_2, target_2)
    assert node_a.secret("db") is None  # no consumer left anywhere: the Secret is gone


async def test_garbage_collection_removes_the_secret_while_the_agent_is_down(
    agents: KubeAgents, kube_api: FakeKubeApi
) -> None:
    node = await agents.start()
    node.add_spc(secret_objects=DB)
    web = await node.add_pod("web-0")
    target = await node.publish(web)
    await node.synced()
    await agents.stop(node)  # the volume stays mounted, nobody is watching
    kube_api.store.delete("pods", "default", "web-0")
    assert kube_api.store.get("secrets", "default", "db") is None
    # Back up: nothing brings the gone pod's Secret back; kubelet then unpublishes.
    again = await agents.start()
    await again.resync()
    await again.kubelet.unpublish(again.request(web).volume_id, target)
    await again.synced()
    assert kube_api.store.get("secrets", "default", "db") is None


async def test_a_users_own_secret_of_that_name_is_left_alone(node: KubeHarness) -> None:
    mine = node.kube.store.put(secret("db", string_data={"password": "mine"}))
    node.add_spc(secret_objects=[*DB, entry("cache", "Opaque", ("username", "user"))])
    await node.publish(await node.add_pod("web-0"))
    await node.synced()
    assert node.secret("db") == mine  # not a byte changed, no owner added
    assert data_of(node.secret("cache")) == {"user": b"admin"}
    event = await node.event("FailedToCreateSecret")
    assert event["type"] == "Warning"
    assert "secret default/db already exists and is not managed" in event["message"]
    assert "secrets-store.csi.k8s.io/managed=true" in event["message"]
    await node.resync()
    assert node.secret("db") == mine


async def test_a_secret_deleted_by_hand_is_recreated_by_the_next_resync(
    node: KubeHarness,
) -> None:
    node.add_spc(secret_objects=DB)
    await node.publish(await node.add_pod("web-0"))
    await node.synced()
    node.kube.store.delete("secrets", "default", "db")
    assert await node.resync() == 1
    assert data_of(node.secret("db")) == {"password": b"s3cr3t"}
    assert consumers(node.secret("db")) == ["web-0"]
    mark = node.kube.requests.mark()
    await node.resync()  # in sync: one read, no write
    assert [r.method for r in node.kube.requests.since(mark, resource="secrets")] == ["GET"]
    # The agent's own loop, woken instead of waiting out its interval, does the same.
    node.kube.store.delete("secrets", "default", "db")
    assert node.agent.secret_resync is not None
    node.agent.secret_resync.trigger()
    await eventually(lambda: node.secret("db") is not None, "recreated by the re-sync loop")


async def test_a_secret_the_class_no_longer_names_goes_once_no_consumer_holds_it(
    agents: KubeAgents, two_nodes: tuple[KubeHarness, KubeHarness]
) -> None:
    node_a, node_b = two_nodes
    await node_a.publish(await node_a.add_pod("web-0"))
    web_1 = await node_b.add_pod("web-1", node="node-b")
    await node_b.publish(web_1)
    await node_a.synced()
    await node_b.synced()
    await agents.stop(node_b)  # node-b's pod keeps mounting; its agent is down for now
    renamed = [entry("db-v2", "Opaque", ("password", "password"))]
    await node_a.change_spc(secret_objects=renamed)  # node-a re-syncs on the change itself
    await eventually(lambda: consumers(node_a.secret("db")) == ["web-1"], "node-a let go of db")
    assert consumers(node_a.secret("db-v2")) == ["web-0"]
    await agents.start(node="node-b", root=node_b.root)  # catches up at start
    await eventually(lambda: node_a.secret("db") is None, "the last holder let go of db")
    await eventually(
        lambda: sorted(consumers(node_a.secret("db-v2"))) == ["web-0", "web-1"],
        "both pods hold db-v2",
    )


async def test_a_deleted_class_lets_go_of_its_secrets(node: KubeHarness) -> None:
    node.add_spc(secret_objects=DB)
    await node.publish(await node.add_pod("web-0"))
    await node.synced()
    node.kube.store.delete("secretproviderclasses", "default", "app-secrets")
    await eventually(lambda: node.secret("db") is None, "released when the class went")


async def test_after_a_restart_a_secret_renamed_meanwhile_is_let_go(agents: KubeAgents) -> None:
    node = await agents.start()
    node.add_spc(secret_objects=DB)
    await node.publish(await node.add_pod("web-0"))
    await node.synced()
    await agents.stop(node)
    node.add_spc(secret_objects=[entry("db-v2", "Opaque", ("password", "password"))])
    again = await agents.start()  # its first re-sync pass runs at start
    await eventually(
        lambda: again.secret("db") is None and again.secret("db-v2") is not None,
        "the old Secret released and the new one created by the start-up pass",
    )
    assert consumers(again.secret("db-v2")) == ["web-0"]
