"""A class without ``secretObjects`` costs secret sync nothing (upstream §7: no secretObjects,
done), through the agent's socket against the fake API: no wait for the pod's status object,
no Secret request, no log line, no retry, at publish, re-sync and unpublish alike (also when
the volume is unpublished before any sync recorded it), and a pass counts such a volume as
skipped, not synced. A class that gains ``secretObjects`` later still
gets its Secrets, and one that loses them still lets go of the Secrets it synced. The agent's
clock is a manual one (no timer moves), and its wait for a status write is 0 s, so a sync that
still waited would give up and defer at once."""

from __future__ import annotations

import io
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from agent.logs import configure_logging
from agent.model import OwnerReference
from agent.sync.passes import PassCounts
from tests.fakes.kube_api import owner_reference, replica_set
from tests.integration.k8s.test_secret_sync import entry, owners, status_owner
from tests.support.clock import ManualClock
from tests.support.kube_agent import KubeAgents, KubeHarness, eventually

DB = [entry("db", "Opaque", ("password", "password"))]
STATUSES = "secretproviderclasspodstatuses"
SPCS = "secretproviderclasses"


class Watched:
    """What secret sync did for a node: its status waits and its log lines."""

    def __init__(self, node: KubeHarness, monkeypatch: pytest.MonkeyPatch) -> None:
        self.lines = io.StringIO()
        configure_logging(json=True, verbosity=0, stream=self.lines)
        self.status_waits: list[str] = []
        consumers = node.cluster.secret_consumers
        wait: Callable[[str, str], Awaitable[OwnerReference | None]] = consumers.status_reference

        async def status_reference(namespace: str, name: str) -> OwnerReference | None:
            self.status_waits.append(name)
            return await wait(namespace, name)

        monkeypatch.setattr(consumers, "status_reference", status_reference)

    def sync_lines(self) -> list[dict[str, Any]]:
        lines = map(json.loads, self.lines.getvalue().splitlines())
        return [line for line in lines if line["event"].startswith("secret_sync.")]


@pytest.fixture
async def node(agents: KubeAgents) -> KubeHarness:
    """One agent whose status wait gives up at once; its first re-sync pass is done."""
    harness = await agents.start(clock=ManualClock())
    await eventually(lambda: harness.secret_resync.full_passes == 1, "the pass at start")
    harness.cluster.secret_consumers.status_wait = 0.0
    return harness


@pytest.fixture
def watched(node: KubeHarness, monkeypatch: pytest.MonkeyPatch) -> Watched:
    return Watched(node, monkeypatch)


@pytest.mark.parametrize("status_write", ["queued", "refused"])
async def test_a_class_without_secret_objects_waits_for_nothing_and_asks_nothing(
    node: KubeHarness, watched: Watched, status_write: str
) -> None:
    """The pod is bare, so its sync would need its status object: still queued at the sync
    (a burst of pod starts) or refused by the API (then given up, as for a too long name)."""
    mark = node.kube.requests.mark()
    queued = status_write == "queued"
    if queued:
        status = node.kube.faults.hold(verb="create", resource=STATUSES)
    else:
        status = node.kube.faults.fail(422, verb="create", resource=STATUSES, times=None)
    web = await node.add_pod("web-0")
    target = await node.publish(web)
    if queued:
        await status.wait_held()
    else:
        await eventually(lambda: status.hits >= 1, "the status write refused")
    await node.synced()
    if queued:
        status.release()
    await node.settle()
    assert await node.resync() == PassCounts(skipped=1)  # passed over, at no cost
    await node.kubelet.unpublish(node.request(web).volume_id, target)
    await node.synced()
    assert watched.status_waits == []
    assert watched.sync_lines() == []  # no secret_sync.pod_status_unwritten, nor _missing
    assert not node.syncer.failing and node.secret_resync.retry_at is None
    assert node.kube.requests.since(mark, resource="secrets") == []


async def test_a_class_that_gains_secret_objects_gets_its_secrets(
    node: KubeHarness, watched: Watched
) -> None:
    """Its publish's sync had nothing to do; the class's change syncs the volume, and that
    sync waits for the status write (still queued) as any other."""
    held = node.kube.faults.hold(verb="create", resource=STATUSES)
    await node.publish(await node.add_pod("web-0"))
    await held.wait_held()
    await node.synced()
    assert watched.status_waits == []
    await node.change_spc(secret_objects=DB)
    await eventually(
        lambda: any(e["event"] == "secret_sync.pod_status_unwritten" for e in watched.sync_lines()),
        "the change's sync deferred until the status lands",
    )
    held.release()
    await eventually(lambda: node.secret("db") is not None, "the Secret once the status landed")
    assert owners(node.secret("db")) == [status_owner("web-0")]
    assert node.secret_resync.full_passes == 1  # the change did it, not a full pass


async def test_a_class_that_loses_secret_objects_lets_go_of_its_secrets(
    node: KubeHarness, watched: Watched
) -> None:
    """As when an entry is removed (docs/secret-sync.md): the last consumer's release deletes
    the Secret. From then on the volume holds nothing, and a pass costs nothing for it."""
    await node.change_spc(secret_objects=DB)
    await node.publish(await node.add_pod("web-0"))
    await eventually(lambda: node.secret("db") is not None, "db synced once the status landed")
    assert owners(node.secret("db")) == [status_owner("web-0")]
    await node.change_spc(secret_objects=[])
    await eventually(lambda: node.secret("db") is None, "db let go of")
    waits, mark = len(watched.status_waits), node.kube.requests.mark()
    assert await node.resync() == PassCounts(skipped=1)
    assert watched.status_waits[waits:] == []
    assert node.kube.requests.since(mark, resource="secrets") == []


async def test_a_deleted_class_is_read_once_per_pass(node: KubeHarness, watched: Watched) -> None:
    """Not cached once deleted, the class is asked of the API: once per pass, not once per
    volume; its volumes hold nothing, so nothing else is asked or waited for."""
    await node.change_spc(secret_objects=DB)
    for name in ("web-0", "web-1"):
        await node.publish(await node.add_pod(name))
    await eventually(
        lambda: node.secret("db") is not None and len(owners(node.secret("db"))) == 2,
        "db held by both pods once their statuses landed",
    )
    node.kube.store.delete("secretproviderclasses", "default", "app-secrets")
    await eventually(lambda: node.secret("db") is None, "released by both volumes")
    waits, mark = len(watched.status_waits), node.kube.requests.mark()
    assert await node.resync() == PassCounts(skipped=2)
    assert [r.verb for r in node.kube.requests.since(mark, resource="secretproviderclasses")] == [
        "get"
    ]
    assert watched.status_waits[waits:] == []
    assert node.kube.requests.since(mark, resource="secrets") == []


async def test_secret_objects_dropped_while_the_agent_was_down_are_left_to_garbage_collection(
    agents: KubeAgents,
) -> None:
    """As before this change (docs/secret-sync.md, "After a restart"): the start-up pass finds
    the class names nothing and does not ask what the volume held; the pod's removal asks
    nothing either, and the ReplicaSet's reference stays until the ReplicaSet goes."""
    node = await agents.start()
    node.add_spc(secret_objects=DB)
    rs = node.kube.store.put(replica_set("web-5d8f"))
    web = await node.add_pod("web-5d8f-aaaaa", owner_references=[owner_reference(rs)])
    target = await node.publish(web)
    await node.synced()
    assert owners(node.secret("db")) == ["ReplicaSet/web-5d8f"]
    await agents.stop(node)
    node.add_spc()  # secretObjects removed while the agent is down
    mark = node.kube.requests.mark()
    again = await agents.start()
    await eventually(lambda: again.secret_resync.full_passes == 1, "the pass at start")
    await again.synced()
    again.kube.store.delete("pods", "default", "web-5d8f-aaaaa")
    await eventually(lambda: again.agent.table.get(target) is None, "volume released")
    await again.synced()
    assert again.kube.requests.since(mark, resource="secrets", namespace="default") == []
    assert owners(again.secret("db")) == ["ReplicaSet/web-5d8f"]


async def test_a_volume_unpublished_before_its_sync_asks_only_about_what_its_class_named(
    node: KubeHarness, watched: Watched
) -> None:
    """web-0's first sync deferred (its status write still queued); its class then drops
    secretObjects, and it is unpublished before the class change's sync reaches it (the
    re-sync loop is busy reading a deleted class). Its sync's start noted that it may hold db
    (a census may count it from the moment its status lands, docs/secret-sync.md "What a
    consumer may hold"), so its unpublish reads db, and nothing else: no list of the
    namespace's Secrets."""
    node.add_spc("zc", secret_objects=[entry("z", "Opaque", ("password", "password"))])
    await node.publish(await node.add_pod("z-0", spc="zc"), spc="zc")
    await eventually(lambda: node.secret("z") is not None, "z synced")
    await node.change_spc(secret_objects=DB)
    status = node.kube.faults.hold(verb="create", resource=STATUSES)
    web = await node.add_pod("web-0")
    target = await node.publish(web)
    await status.wait_held()
    await node.synced()
    assert watched.sync_lines()[-1]["event"] == "secret_sync.pod_status_unwritten"
    busy = node.kube.faults.hold(verb="get", resource=SPCS, name="zc")
    node.kube.store.delete(SPCS, "default", "zc")
    await busy.wait_held()  # the loop's pass for the deleted class
    await node.change_spc(secret_objects=[])
    mark = node.kube.requests.mark()
    await node.kubelet.unpublish(node.request(web).volume_id, target)
    await node.synced()
    asked = node.kube.requests.since(mark, resource="secrets")
    assert [(r.verb, r.info.name) for r in asked] == [("get", "db")]
    busy.release()
    status.release()
    await eventually(lambda: node.secret("z") is None, "z let go of (its class is deleted)")


async def test_a_pass_counts_what_it_synced_skipped_and_could_not_sync(node: KubeHarness) -> None:
    """One volume of each kind: in sync, of a class naming nothing, whose status is not
    written yet, and of a class the API cannot read now."""
    node.add_spc("plain")
    node.add_spc("gone")
    await node.change_spc(secret_objects=DB)
    await node.publish(await node.add_pod("web-0"))
    await node.publish(await node.add_pod("plain-0", spc="plain"), spc="plain")
    await node.publish(await node.add_pod("gone-0", spc="gone"), spc="gone")
    await node.settle()
    await eventually(lambda: node.secret("db") is not None, "db synced")
    node.kube.faults.fail(500, verb="get", resource=SPCS, name="gone", times=None)
    node.kube.store.delete(SPCS, "default", "gone")
    informer = node.cluster.spcs.informer
    await eventually(lambda: informer.get("default", "gone") is None, "gone left the cache")
    held = node.kube.faults.hold(verb="create", resource=STATUSES)
    await node.publish(await node.add_pod("web-1"))
    await held.wait_held()
    await node.synced()
    counts = await node.resync()
    held.release()
    assert counts == PassCounts(synced=1, skipped=1, not_synced=1, class_unavailable=1)
