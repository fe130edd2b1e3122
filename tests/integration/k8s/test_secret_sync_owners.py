"""Who keeps a synced Secret alive, through the agents' sockets against the fake API (with its
garbage collector): references to the consumers' owners (a ReplicaSet), or to a bare pod's
status object, added as pods come and removed once no live consumer on any node holds them.
Beats upstream #1770 (scaled to zero: the Secret goes) and #2051 (scaled down: it stays);
garbage collection still works while the agents are down; two nodes changing references at
once never lose one (a removal racing a new consumer, and two removals); the API calls each
removal costs are counted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.sync.passes import PassCounts
from tests.fakes.kube_api import FakeKubeApi, owner_reference, replica_set, secret
from tests.integration.k8s.test_secret_sync import data_of, entry, owners, status_owner
from tests.support.kube_agent import KubeAgents, KubeHarness, eventually

DB = [entry("db", "Opaque", ("password", "password"))]
# A removal that finds the reference held by a pod on another node: no write.
HELD_ELSEWHERE = ["get secrets", "list secretproviderclasspodstatuses", "get pods"]
Object = dict[str, Any]


@pytest.fixture
async def two_nodes(agents: KubeAgents, tmp_path: Path) -> tuple[KubeHarness, KubeHarness]:
    """Agents on node-a and node-b, and a class syncing the Secret db."""
    node_a = await agents.start(root=tmp_path / "a")
    node_b = await agents.start(node="node-b", root=tmp_path / "b")
    node_a.add_spc(secret_objects=DB)
    return node_a, node_b


def _replica_set(node: KubeHarness, name: str = "web-5d8f") -> Object:
    return node.kube.store.put(replica_set(name))


async def _replica(node: KubeHarness, rs: Object, name: str) -> tuple[Object, str]:
    """A pod of ``rs`` on ``node`` (as the ReplicaSet controller makes it), published."""
    pod = await node.add_pod(
        name,
        node=node.settings.node_id,
        owner_references=[{**owner_reference(rs, controller=True), "blockOwnerDeletion": True}],
    )
    target = await node.publish(pod)
    await node.synced()
    return pod, target


async def _pod_deleted(node: KubeHarness, pod: Object, target: str) -> None:
    """The pod goes from the API (kubelet's final delete): its volume and references go."""
    node.kube.store.delete("pods", "default", pod["metadata"]["name"])
    await eventually(lambda: node.agent.table.get(target) is None, "volume released")
    await node.synced()


async def _removal_calls(node: KubeHarness, pod: Object, target: str) -> list[str]:
    """The pod goes; what its node's secret sync asked the API for it."""
    mark = node.kube.requests.mark()
    await _pod_deleted(node, pod, target)
    return _sync_calls(node.kube, mark)


def _sync_calls(kube: FakeKubeApi, mark: int) -> list[str]:
    """What secret sync asked the API since ``mark``: Secrets, status lists, pod reads."""
    calls = []
    for request in kube.requests.since(mark):
        resource, verb = request.resource, request.verb
        wanted = (
            resource == "secrets"
            or (resource == "secretproviderclasspodstatuses" and verb == "list")
            or (resource == "pods" and verb in ("get", "list"))
        )
        if wanted:
            calls.append(f"{verb} {resource}")
    return calls


async def test_a_deployment_scaled_to_zero_loses_its_secret(
    two_nodes: tuple[KubeHarness, KubeHarness],
) -> None:
    """Upstream #1770: the ReplicaSet outlives its pods, so upstream keeps the Secret."""
    node_a, node_b = two_nodes
    rs = _replica_set(node_a)
    web_a, target_a = await _replica(node_a, rs, "web-5d8f-aaaaa")
    web_b, target_b = await _replica(node_b, rs, "web-5d8f-bbbbb")
    synced = node_a.secret("db")
    assert synced is not None
    # One reference for both pods, copied as upstream does: no controller, no blockOwnerDeletion.
    assert synced["metadata"]["ownerReferences"] == [owner_reference(rs)]

    # The Secret, the statuses, and the other node's pod (not in this node's cache).
    assert await _removal_calls(node_a, web_a, target_a) == HELD_ELSEWHERE
    assert owners(node_a.secret("db")) == ["ReplicaSet/web-5d8f"]  # web-5d8f-bbbbb holds it

    removal = await _removal_calls(node_b, web_b, target_b)
    assert node_a.secret("db") is None
    assert node_a.kube.store.get("replicasets", "default", "web-5d8f") is not None
    # Remove the last reference, count again (no newcomer), delete.
    assert removal == [
        "get secrets",
        "list secretproviderclasspodstatuses",
        "patch secrets",
        "list secretproviderclasspodstatuses",
        "delete secrets",
    ]


async def test_scaling_down_keeps_the_secret_for_the_pods_left(
    two_nodes: tuple[KubeHarness, KubeHarness],
) -> None:
    """Upstream #2051: a scale-down must not take a Secret still mounted."""
    node_a, node_b = two_nodes
    rs = _replica_set(node_a)
    await _replica(node_a, rs, "web-5d8f-11111")
    web_2, target_2 = await _replica(node_a, rs, "web-5d8f-22222")
    web_3, target_3 = await _replica(node_b, rs, "web-5d8f-33333")
    # Scaled 3 -> 1: the ReplicaSet controller marks two pods for deletion at once.
    for name in ("web-5d8f-22222", "web-5d8f-33333"):
        node_a.kube.store.delete("pods", "default", name, grace_period_seconds=None)
    # The pod left lives on node-a: one GET tells (it is read first, and is live).
    assert await _removal_calls(node_b, web_3, target_3) == HELD_ELSEWHERE
    # web-5d8f-11111 is in node-a's own pod cache: no pod read at all.
    assert await _removal_calls(node_a, web_2, target_2) == HELD_ELSEWHERE[:2]
    assert owners(node_a.secret("db")) == ["ReplicaSet/web-5d8f"]
    node_a.kube.store.collect_garbage()
    assert data_of(node_a.secret("db")) == {"password": b"s3cr3t"}


async def test_pods_deleted_together_do_not_keep_each_others_reference(
    two_nodes: tuple[KubeHarness, KubeHarness],
) -> None:
    """Scaled to zero, every pod is marked for deletion before any volume goes: the first
    unmount already finds no live consumer left."""
    node_a, node_b = two_nodes
    rs = _replica_set(node_a)
    web_a, target_a = await _replica(node_a, rs, "web-5d8f-aaaaa")
    await _replica(node_b, rs, "web-5d8f-bbbbb")
    for name in ("web-5d8f-aaaaa", "web-5d8f-bbbbb"):
        node_a.kube.store.delete("pods", "default", name, grace_period_seconds=None)
    await _pod_deleted(node_a, web_a, target_a)
    assert node_a.secret("db") is None


async def test_pods_on_other_nodes_are_read_likeliest_first_and_many_with_one_list(
    two_nodes: tuple[KubeHarness, KubeHarness],
) -> None:
    """Two Deployments share the class. A census reads another node's pods named after the
    owner asked about first, and past three GETs lists the namespace's pods once instead."""
    node_a, node_b = two_nodes
    web, api = _replica_set(node_a, "web-5d8f"), _replica_set(node_a, "api-77c9")
    web_a, target_a = await _replica(node_a, web, "web-5d8f-aaaaa")
    for index in range(5):
        await _replica(node_b, api, f"api-77c9-{index}0000")
    web_b, target_b = await _replica(node_b, web, "web-5d8f-bbbbb")
    assert owners(node_a.secret("db")) == ["ReplicaSet/web-5d8f", "ReplicaSet/api-77c9"]

    # web-5d8f-aaaaa (node-a) is read first, ahead of the api pods (node-b's own cache).
    assert await _removal_calls(node_b, web_b, target_b) == HELD_ELSEWHERE
    removal = await _removal_calls(node_a, web_a, target_a)
    assert owners(node_a.secret("db")) == ["ReplicaSet/api-77c9"]
    assert removal == [
        "get secrets",
        "list secretproviderclasspodstatuses",
        *["get pods"] * 3,
        "list pods",
        "patch secrets",
        "list secretproviderclasspodstatuses",
    ]


async def test_a_bare_pods_secret_is_owned_by_its_status_and_goes_with_it(
    agents: KubeAgents, kube_api: FakeKubeApi
) -> None:
    node = await agents.start()
    node.add_spc(secret_objects=DB)
    web = await node.add_pod("web-0")
    target = await node.publish(web)
    await node.synced()
    assert owners(node.secret("db")) == [status_owner("web-0")]
    mark = kube_api.requests.mark()
    # (The status's own delete waits, or garbage collection would take the Secret first.)
    status_deleted = kube_api.faults.hold(verb="delete", resource="secretproviderclasspodstatuses")
    await node.kubelet.unpublish(node.request(web).volume_id, target)
    await node.synced()
    assert node.secret("db") is None
    assert _sync_calls(kube_api, mark) == ["get secrets", "delete secrets"]  # no census
    status_deleted.release()
    await node.settle()

    # While the agent is down, garbage collection does it: pod -> status -> Secret.
    target = await node.publish(web)
    await node.synced()
    assert node.secret("db") is not None
    await agents.stop(node)
    kube_api.store.delete("pods", "default", "web-0")
    status = "web-0-default-app-secrets"
    assert kube_api.store.get("secretproviderclasspodstatuses", "default", status) is None
    assert kube_api.store.get("secrets", "default", "db") is None
    again = await agents.start()
    await again.resync()
    await again.kubelet.unpublish(again.request(web).volume_id, target)
    await again.synced()
    assert kube_api.store.get("secrets", "default", "db") is None


async def test_deleting_the_replicaset_while_the_agent_is_down_collects_the_secret(
    agents: KubeAgents, kube_api: FakeKubeApi
) -> None:
    node = await agents.start()
    node.add_spc(secret_objects=DB)
    rs = _replica_set(node)
    web, target = await _replica(node, rs, "web-5d8f-aaaaa")
    await agents.stop(node)  # the volume stays mounted, nobody is watching
    kube_api.store.delete("replicasets", "default", "web-5d8f")  # cascades to its pods
    assert kube_api.store.get("pods", "default", "web-5d8f-aaaaa") is None
    assert kube_api.store.get("secrets", "default", "db") is None
    again = await agents.start()  # nothing brings the gone pod's Secret back
    await again.resync()
    await again.kubelet.unpublish(again.request(web).volume_id, target)
    await again.synced()
    assert kube_api.store.get("secrets", "default", "db") is None


async def test_a_consumer_arriving_during_a_removal_gets_its_reference_back(
    two_nodes: tuple[KubeHarness, KubeHarness], kube_api: FakeKubeApi
) -> None:
    """node-a removes the last reference; node-b's new pod of the same ReplicaSet reads the
    Secret before that write lands, finds the reference, and writes nothing. node-a's second
    census sees it and puts the reference back instead of deleting the Secret."""
    node_a, node_b = two_nodes
    rs = _replica_set(node_a)
    web_a, target_a = await _replica(node_a, rs, "web-5d8f-aaaaa")
    held = kube_api.faults.hold(verb="patch", resource="secrets", times=1)
    kube_api.store.delete("pods", "default", "web-5d8f-aaaaa")
    await held.wait_held()  # node-a's removal is on its way, decided on an old census
    mark = kube_api.requests.mark()
    await _replica(node_b, rs, "web-5d8f-bbbbb")
    assert kube_api.requests.since(mark, resource="secrets", verb="patch") == []
    held.release()
    await eventually(lambda: node_a.agent.table.get(target_a) is None, "web-a released")
    await node_a.synced()
    assert owners(node_a.secret("db")) == ["ReplicaSet/web-5d8f"]
    assert web_a["metadata"]["uid"] not in str(node_a.secret("db"))


async def test_two_nodes_removing_at_once_never_bring_a_removed_reference_back(
    two_nodes: tuple[KubeHarness, KubeHarness], kube_api: FakeKubeApi
) -> None:
    """Each removal is conditional on the version it read: the one that lost the race is
    read again and decided again, so neither overwrites the other's change."""
    node_a, node_b = two_nodes
    first, second, third = (_replica_set(node_a, f"app-{n}") for n in "123")
    _, target_one = await _replica(node_a, first, "app-1-aaaaa")
    two, target_two = await _replica(node_b, second, "app-2-bbbbb")
    await _replica(node_a, third, "app-3-ccccc")
    assert owners(node_a.secret("db")) == [
        "ReplicaSet/app-1",
        "ReplicaSet/app-2",
        "ReplicaSet/app-3",
    ]
    held = kube_api.faults.hold(verb="patch", resource="secrets", times=1)
    kube_api.store.delete("pods", "default", "app-1-aaaaa")
    await held.wait_held()  # node-a's patch, made from the version with all three
    await _pod_deleted(node_b, two, target_two)
    assert owners(node_a.secret("db")) == ["ReplicaSet/app-1", "ReplicaSet/app-3"]
    held.release()
    await eventually(lambda: node_a.agent.table.get(target_one) is None, "app-1 released")
    await node_a.synced()
    assert owners(node_a.secret("db")) == ["ReplicaSet/app-3"]
    assert kube_api.requests.count(resource="secrets", verb="patch", status=409) == 1


async def test_a_secret_the_class_no_longer_names_goes_even_while_another_node_is_down(
    agents: KubeAgents, two_nodes: tuple[KubeHarness, KubeHarness]
) -> None:
    """No consumer's class names the Secret any more: node-a lets go of the shared reference
    without waiting for node-b, whose pod mounts the class but no longer needs db."""
    node_a, node_b = two_nodes
    rs = _replica_set(node_a)
    await _replica(node_a, rs, "web-5d8f-aaaaa")
    await _replica(node_b, rs, "web-5d8f-bbbbb")
    await agents.stop(node_b)
    await node_a.change_spc(secret_objects=[entry("db-v2", "Opaque", ("password", "password"))])
    await eventually(lambda: node_a.secret("db") is None, "db let go of")
    assert owners(node_a.secret("db-v2")) == ["ReplicaSet/web-5d8f"]
    again = await agents.start(node="node-b", root=node_b.root)
    await again.resync()
    assert owners(node_a.secret("db-v2")) == ["ReplicaSet/web-5d8f"]


async def test_the_agents_earlier_pod_references_give_way_to_the_owners(
    node: KubeHarness,
) -> None:
    """A Secret synced before this release (one reference per consumer pod) is taken over:
    the pod's own reference is replaced by its owner's, another pod's stays until it goes."""
    node.add_spc(secret_objects=DB)
    rs = _replica_set(node)
    web = await node.add_pod("web-5d8f-aaaaa", owner_references=[owner_reference(rs)])
    other = await node.add_pod("web-other")
    legacy = secret("db", labels={"secrets-store.csi.k8s.io/managed": "true"})
    legacy["metadata"]["ownerReferences"] = [owner_reference(other), owner_reference(web)]
    node.kube.store.put(legacy)
    await node.publish(web)
    await node.synced()
    assert owners(node.secret("db")) == ["Pod/web-other", "ReplicaSet/web-5d8f"]


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
    assert await node.resync() == PassCounts(synced=1)
    assert data_of(node.secret("db")) == {"password": b"s3cr3t"}
    assert owners(node.secret("db")) == [status_owner("web-0")]
    mark = node.kube.requests.mark()
    await node.resync()  # in sync: one read, no write, nothing else asked
    assert _sync_calls(node.kube, mark) == ["get secrets"]
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
    await eventually(
        lambda: owners(node_a.secret("db")) == [status_owner("web-1")], "node-a let go of db"
    )
    assert owners(node_a.secret("db-v2")) == [status_owner("web-0")]
    await agents.start(node="node-b", root=node_b.root)  # catches up at start
    await eventually(lambda: node_a.secret("db") is None, "the last holder let go of db")
    await eventually(
        lambda: (
            sorted(owners(node_a.secret("db-v2")))
            == [
                status_owner("web-0"),
                status_owner("web-1"),
            ]
        ),
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
    rs = _replica_set(node)
    await _replica(node, rs, "web-5d8f-aaaaa")
    await agents.stop(node)
    node.add_spc(secret_objects=[entry("db-v2", "Opaque", ("password", "password"))])
    again = await agents.start()  # its first re-sync pass runs at start
    await eventually(
        lambda: again.secret("db") is None and again.secret("db-v2") is not None,
        "the old Secret released and the new one created by the start-up pass",
    )
    assert owners(again.secret("db-v2")) == ["ReplicaSet/web-5d8f"]


async def test_a_bare_pods_secret_waits_for_its_status(node: KubeHarness) -> None:
    """The status object is written before the Secret is read: it is the bare pod's owner,
    and what makes the consumer visible to other nodes' counts."""
    node.add_spc(secret_objects=DB)
    held = node.kube.faults.hold(verb="create", resource="secretproviderclasspodstatuses")
    web = await node.add_pod("web-0")
    await node.publish(web)  # the mount itself never waits on the API
    await held.wait_held()
    assert node.secret("db") is None
    held.release()
    await node.synced()
    assert owners(node.secret("db")) == [status_owner("web-0")]
