"""Restart recovery in Kubernetes mode: the mount table comes back from the volume metadata and
this node's status objects; pods that went away while the agent was down are released; a status
edited to point at another pod's volume is never acted upon."""

from __future__ import annotations

import os
from collections.abc import Callable

from tests.support.kube_agent import SPC, KubeAgents, KubeHarness, eventually
from tests.support.mounts import mounts_under


def _gone(target: str) -> Callable[[], bool]:
    return lambda: not os.path.exists(target)


def _mounted(node: KubeHarness, target: str) -> bool:
    if node.settings.mount_mode == "tmpfs":
        return bool(mounts_under(target))
    return os.path.exists(target)


async def test_restart_with_twenty_volumes_recovers_them_and_republish_is_free(
    agents: KubeAgents,
) -> None:
    first = await agents.start()
    pods = [await first.add_pod(f"web-{i}") for i in range(20)]
    targets = [await first.publish(p) for p in pods]
    await first.settle()
    assert len(first.statuses()) == 20
    await agents.stop(first)  # the volumes stay mounted, as when the agent's pod restarts
    second = await agents.start()
    assert {record.target_path for record in second.agent.table} == set(targets)
    assert all(_mounted(second, target) for target in targets)
    # Resumed without waiting for kubelet; a republish then costs no API call at all.
    mark = second.kube.requests.mark()
    for again in pods:
        await second.publish(again)
    await second.settle()
    assert second.kube.requests.since(mark) == []
    assert second.provider.requests == []


async def test_pods_deleted_while_the_agent_was_down_are_released_after_restart(
    agents: KubeAgents,
) -> None:
    first = await agents.start()
    pods = [await first.add_pod(f"web-{i}") for i in range(5)]
    targets = [await first.publish(p) for p in pods]
    await first.settle()
    await agents.stop(first)
    for gone in pods[:3]:
        first.kube.store.delete("pods", "default", gone["metadata"]["name"])
    second = await agents.start()
    for target in targets[:3]:
        await eventually(_gone(target), "gone pod's volume", 3.0)
    assert second.agent.cleanup is not None
    await second.agent.cleanup.wait()
    assert {record.target_path for record in second.agent.table} == set(targets[3:])


async def test_statuses_of_volumes_that_did_not_survive_are_deleted(agents: KubeAgents) -> None:
    first = await agents.start()
    web = await first.add_pod("web-0")
    target = await first.publish(web)
    await first.settle()
    await agents.stop(first)
    # The node rebooted (tmpfs gone) or kubelet cleaned up while the agent was away.
    await _force_unmount(first, target)
    second = await agents.start()
    await second.settle()
    assert second.statuses() == []
    assert len(second.agent.table) == 0


async def _force_unmount(node: KubeHarness, target: str) -> None:
    await node.agent.mounter.unmount(target)


async def test_status_edited_to_point_at_another_pods_volume_is_never_acted_upon(
    agents: KubeAgents,
) -> None:
    first = await agents.start()
    mallory, victim = await first.add_pod("mallory-0"), await first.add_pod("victim-0")
    mallory_target, victim_target = await first.publish(mallory), await first.publish(victim)
    await first.settle()
    await agents.stop(first)
    name = f"mallory-0-default-{SPC}"
    first.kube.store.patch(
        "secretproviderclasspodstatuses",
        "default",
        name,
        {"status": {"targetPath": victim_target}},
    )
    second = await agents.start()
    # Mallory's own volume is still found from its metadata when kubelet republishes it.
    await second.publish(mallory)
    second.kube.store.delete("pods", "default", "mallory-0")
    await eventually(lambda: not os.path.exists(mallory_target), "mallory's volume released")
    assert second.agent.cleanup is not None
    await second.agent.cleanup.wait()
    await second.settle()
    assert _mounted(second, victim_target)
    assert second.status(name) is None
    assert second.status(f"victim-0-default-{SPC}") is not None
    assert {r.target_path for r in second.agent.table} == {victim_target}


async def test_this_nodes_statuses_are_read_from_the_watch_cache_at_start(
    agents: KubeAgents,
) -> None:
    """etcd cannot filter by label: the start's list of this node's statuses asks for any
    version (the apiserver's watch cache answers), as upstream's cached client does."""
    first = await agents.start()
    await first.publish(await first.add_pod("web-0"))
    await first.settle()
    await agents.stop(first)
    mark = first.kube.requests.mark()
    await agents.start()
    (listed,) = first.kube.requests.since(
        mark, verb="list", resource="secretproviderclasspodstatuses"
    )
    assert listed.query["resourceVersion"] == "0"
    assert listed.query["labelSelector"] == "internal.secrets-store.csi.k8s.io/node-name=node-a"
