"""A pod status another node took over (upstream §6: a StatefulSet pod rescheduled under the
same name) belongs to that node: the node the old pod left never writes over it or deletes it,
whether it learns of the old pod's end after a restart or its delete reaches the API late."""

from __future__ import annotations

from pathlib import Path

from tests.support.kube_agent import SPC, KubeAgents, KubeHarness, Object, eventually

NODE_LABEL = "internal.secrets-store.csi.k8s.io/node-name"
NAME = f"web-0-default-{SPC}"


async def _web_0_on_node_a(agents: KubeAgents, root: Path) -> KubeHarness:
    node_a = await agents.start(root=root / "a")
    old = await node_a.add_pod("web-0")
    await node_a.publish(old)
    await node_a.settle()
    return node_a


async def _web_0_moves_to_node_b(agents: KubeAgents, root: Path) -> tuple[KubeHarness, Object]:
    """The StatefulSet recreates web-0 on node-b, whose agent publishes its volume."""
    node_b = await agents.start(node="node-b", root=root / "b")
    new = await node_b.add_pod("web-0", node="node-b")
    await node_b.publish(new)
    await node_b.settle()
    return node_b, new


def _assert_node_b_keeps_it(node_b: KubeHarness, new: Object) -> None:
    status = node_b.status(NAME)
    assert status is not None, "node-a deleted node-b's status"
    assert status["metadata"]["labels"][NODE_LABEL] == "node-b"
    assert [ref["uid"] for ref in status["metadata"]["ownerReferences"]] == [new["metadata"]["uid"]]
    assert new["metadata"]["uid"] in status["status"]["targetPath"]


async def test_a_node_back_after_its_pod_moved_leaves_the_new_nodes_status_alone(
    agents: KubeAgents, agent_root: Path
) -> None:
    node_a = await _web_0_on_node_a(agents, agent_root)
    await agents.stop(node_a)  # node-a is lost with the volume still mounted
    node_a.kube.store.delete("pods", "default", "web-0")  # force-deleted
    node_b, new = await _web_0_moves_to_node_b(agents, agent_root)

    back = await agents.start(root=agent_root / "a")  # node-a returns, recovers the volume
    await eventually(lambda: len(back.agent.table) == 0, "the old pod's volume released")
    assert back.agent.cleanup is not None
    await back.agent.cleanup.wait()
    await back.settle()
    _assert_node_b_keeps_it(node_b, new)


async def test_a_late_delete_leaves_the_status_the_pods_new_node_wrote(
    agents: KubeAgents, agent_root: Path
) -> None:
    node_a = await _web_0_on_node_a(agents, agent_root)
    # node-a's way to the API is slow: its delete arrives after the pod moved.
    late = node_a.kube.faults.hold(verb="delete", resource="secretproviderclasspodstatuses")
    node_a.kube.store.delete("pods", "default", "web-0")
    await late.wait_held()
    node_b, new = await _web_0_moves_to_node_b(agents, agent_root)
    late.release()
    await node_a.settle()
    _assert_node_b_keeps_it(node_b, new)


async def test_a_pod_read_that_fails_delays_the_takeover_and_never_gives_it_up(
    agents: KubeAgents, agent_root: Path
) -> None:
    """Whether node-b may take node-a's status over rests on a read of the pod; an API that
    answers it 503 must not make node-b leave the status to node-a, nor drop its write."""
    node_a = await _web_0_on_node_a(agents, agent_root)
    left = node_a.status(NAME)
    assert left is not None
    await agents.stop(node_a, unpublish=True)
    node_a.kube.store.delete("pods", "default", "web-0")
    # node-a was lost with the pod: its status is still there (garbage collection is late).
    del left["metadata"]["uid"]
    node_a.kube.store.put(left)
    node_b = await agents.start(node="node-b", root=agent_root / "b")
    new = await node_b.add_pod("web-0", node="node-b")
    failing = node_b.kube.faults.fail(503, verb="get", resource="pods", name="web-0", times=2)

    await node_b.publish(new)
    await node_b.settle()

    assert failing.hits == 2
    _assert_node_b_keeps_it(node_b, new)
