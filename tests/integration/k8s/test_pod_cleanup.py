"""A pod that goes away takes its volumes with it, however the news arrives: a DELETED event,
a terminal phase, a pod deleted while its publish runs, a deletion missed while the watch was
down (found by the relist after 410 Gone), or a same-name pod that replaced it."""

from __future__ import annotations

import asyncio
import os

from tests.fakes.kube_api import pod
from tests.support.kube_agent import SPC, KubeAgents, KubeHarness, eventually
from tests.support.mounts import mounts_under


def _mounted(node: KubeHarness, target: str) -> bool:
    return (
        bool(mounts_under(target))
        if node.settings.mount_mode == "tmpfs"
        else (os.path.exists(target))
    )


async def _gone(node: KubeHarness, uid: str) -> None:
    await eventually(lambda: not node.agent.table.of_pod(uid), "the pod's volumes released")
    assert node.agent.cleanup is not None
    await node.agent.cleanup.wait()
    await node.settle()


async def test_deleted_pod_loses_volumes_status_and_mount(node: KubeHarness) -> None:
    web, api = await node.add_pod("web-0"), await node.add_pod("api-0")
    web_target, api_target = await node.publish(web), await node.publish(api)
    await node.settle()
    assert len(node.statuses()) == 2
    node.kube.store.delete("pods", "default", "web-0")
    await _gone(node, web["metadata"]["uid"])
    assert not _mounted(node, web_target)
    assert not os.path.exists(web_target)
    assert [s["metadata"]["name"] for s in node.statuses()] == [f"api-0-default-{SPC}"]
    assert _mounted(node, api_target)


async def test_finished_pod_is_cleaned_up_like_a_deleted_one(node: KubeHarness) -> None:
    job = await node.add_pod("job-0")
    target = await node.publish(job)
    node.kube.store.patch("pods", "default", "job-0", {"status": {"phase": "Succeeded"}})
    await _gone(node, job["metadata"]["uid"])
    assert not os.path.exists(target)
    assert node.statuses() == []


async def test_pod_deleted_while_its_publish_runs_leaves_nothing(node: KubeHarness) -> None:
    web = await node.add_pod("web-0")
    node.provider.gate = asyncio.Event()
    publish = asyncio.create_task(node.publish(web))
    await eventually(lambda: node.provider.in_flight == 1, "the provider call started")
    node.kube.store.delete("pods", "default", "web-0")
    await eventually(
        lambda: node.cluster.pods is not None and not node.cluster.pods.informer.items,
        "the deletion seen by the agent",
    )
    node.provider.gate.set()
    target = await publish  # kubelet is told success, as for any publish that completed
    await _gone(node, web["metadata"]["uid"])
    assert not os.path.exists(target)
    assert node.statuses() == []


async def test_deletion_missed_while_the_watch_was_down_is_found_by_the_relist(
    node: KubeHarness,
) -> None:
    web = await node.add_pod("web-0")
    target = await node.publish(web)
    await node.settle()
    informer = node.cluster.pods.informer if node.cluster.pods else None
    assert informer is not None
    lists = informer.lists
    node.kube.faults.fail(503, verb="watch", resource="pods", times=None)
    node.kube.store.drop_watches("pods", reset=True)
    node.kube.store.delete("pods", "default", "web-0")
    node.kube.store.compact()  # the watch cannot resume: 410 Gone, then a relist
    node.kube.faults.clear()
    await _gone(node, web["metadata"]["uid"])
    assert informer.lists > lists
    assert not os.path.exists(target)
    assert node.statuses() == []


async def test_pod_replaced_during_a_watch_gap_releases_the_old_volumes(
    node: KubeHarness,
) -> None:
    old = await node.add_pod("db-0")
    target = await node.publish(old)
    new_target = node.target("new-uid")
    node.kube.faults.fail(503, verb="watch", resource="pods", times=None)
    node.kube.store.drop_watches("pods", reset=True)
    node.kube.store.delete("pods", "default", "db-0")
    # A StatefulSet pod rescheduled: same name, new uid; the relist sees only the new one.
    node.kube.store.put(pod("db-0", node="node-a", spc=SPC, uid="new-uid"))
    node.kube.store.compact()
    node.kube.faults.clear()
    await _gone(node, old["metadata"]["uid"])
    assert not os.path.exists(target)
    assert not os.path.exists(new_target)


async def test_grace_period_leaves_the_unmount_to_kubelet(agents: KubeAgents) -> None:
    node = await agents.start(pod_cleanup_grace_period=3600.0)
    web = await node.add_pod("web-0")
    target = await node.publish(web)
    node.kube.store.delete("pods", "default", "web-0")
    await eventually(lambda: not node.agent.table.of_pod(web["metadata"]["uid"]), "released")
    await node.settle()
    assert node.statuses() == []
    assert _mounted(node, target)  # kubelet still has time to unpublish
    await node.kubelet.unpublish(node.request(web).volume_id, target)
    assert not os.path.exists(target)
