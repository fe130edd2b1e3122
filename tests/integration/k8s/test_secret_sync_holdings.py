"""What a consumer may hold, kept until it has let go of it, over the fake API: a reference a
census kept for a consumer is released by that consumer, whether it never synced, its class
stopped naming the Secret first, a volume of its pod went first, it synced before its class
named the Secret, a release failed on the API (retried; a refusal is not), or the agent
restarted in between. Letting go never touches a user's Secret, nor a Secret the class names
again meanwhile, nor one the pod's volume, published again, holds."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes.kube.faults import Fault
from tests.fakes.kube_api import owner_reference, replica_set, secret
from tests.integration.k8s.test_secret_sync import entry, owners, status_owner
from tests.support.clock import ManualClock
from tests.support.kube_agent import KubeAgents, KubeHarness, eventually

DB = entry("db", "Opaque", ("password", "password"))
CACHE = entry("cache", "Opaque", ("username", "user"))
DB2 = entry("db-v2", "Opaque", ("password", "password"))
RS = "ReplicaSet/web-5d8f"
Object = dict[str, Any]


async def _replica(node: KubeHarness, rs: Object, name: str, **options: Any) -> tuple[Object, str]:
    """A pod of ``rs`` on the node, published (its sync may still be waiting)."""
    pod = await node.add_pod(name, owner_references=[owner_reference(rs, controller=True)])
    target = await node.publish(pod, **options)
    await node.synced()
    return pod, target


async def _retry_due(node: KubeHarness, clock: ManualClock) -> None:
    """Move the manual clock to the re-sync loop's retry, once one is armed."""
    resync = node.secret_resync
    await eventually(lambda: resync.retry_at is not None, "a retry armed")
    assert resync.retry_at is not None
    clock.advance(resync.retry_at - clock.now())


def _owners(node: KubeHarness, name: str) -> list[str]:
    found = node.secret(name)
    return owners(found) if found is not None else []


async def _unpublish(node: KubeHarness, pod: Object, target: str, volume: str = "secrets") -> None:
    await node.kubelet.unpublish(node.request(pod, volume=volume).volume_id, target)
    await node.synced()


async def _kept_for_a_consumer_that_never_synced(
    node: KubeHarness, classes: list[Object]
) -> tuple[Object, str, Fault]:
    """web-q synced; web-p (same ReplicaSet) has its status written but has never synced: its
    first sync gave up waiting for the status write, and the sync due when the write landed
    waits behind a re-sync pass stuck reading a deleted class of another namespace. web-q's
    unpublish then keeps the ReplicaSet's references for web-p (a census counts it). Returns
    web-p, its target, and the hold to release at the end."""
    node.cluster.secret_consumers.status_wait = 0.0
    node.add_spc(secret_objects=classes)
    node.add_spc("zc", "other")
    rs = node.kube.store.put(replica_set("web-5d8f"))
    web_q, target_q = await _replica(node, rs, "web-5d8f-q")
    await node.publish(await node.add_pod("z-0", "other", spc="zc"), spc="zc")
    status = node.kube.faults.hold(verb="create", resource="secretproviderclasspodstatuses")
    web_p, target_p = await _replica(node, rs, "web-5d8f-p")
    await status.wait_held()
    busy = node.kube.faults.hold(verb="get", resource="secretproviderclasses", name="zc")
    node.kube.store.delete("secretproviderclasses", "other", "zc")
    await busy.wait_held()
    status.release()
    await node.settle()  # web-p's status is written; its sync waits for the pass
    await _unpublish(node, web_q, target_q)
    for name in (c["secretName"] for c in classes):
        assert owners(node.secret(name)) == [RS], name  # kept: web-p holds it
    return web_p, target_p, busy


async def test_a_reference_kept_for_a_pod_that_never_synced_goes_when_its_class_drops_the_secret(
    node: KubeHarness,
) -> None:
    """Gap: web-p's first sync ran after the class dropped db; it recorded only cache, so db
    kept the ReplicaSet's reference (and lived on) after the last consumer went."""
    web_p, target_p, busy = await _kept_for_a_consumer_that_never_synced(node, [DB, CACHE])
    await node.change_spc(secret_objects=[CACHE])
    busy.release()
    await node.resync()  # web-p's first sync, with the class as it is now
    assert node.secret("db") is None  # no consumer names it any more
    assert owners(node.secret("cache")) == [RS]
    await _unpublish(node, web_p, target_p)
    assert node.secret("cache") is None


async def test_a_reference_kept_for_a_pod_that_never_synced_goes_when_its_class_names_nothing(
    node: KubeHarness,
) -> None:
    """Gap: web-p goes after its class dropped every secretObject and before its first sync;
    its unpublish took the class's 'names nothing' for 'holds nothing'."""
    web_p, target_p, busy = await _kept_for_a_consumer_that_never_synced(node, [DB])
    await node.change_spc(secret_objects=[])
    await _unpublish(node, web_p, target_p)
    assert node.secret("db") is None
    busy.release()


async def test_a_pod_unpublished_before_its_sync_lets_go_of_what_was_kept_for_it(
    node: KubeHarness,
) -> None:
    """Only web-p's own removal can let go of the reference kept for it. Its first sync's
    start noted that it may hold db, so its unpublish lets go of it without listing the
    namespace's Secrets."""
    web_p, target_p, busy = await _kept_for_a_consumer_that_never_synced(node, [DB])
    mark = node.kube.requests.mark()
    await _unpublish(node, web_p, target_p)
    assert node.kube.requests.since(mark, verb="list", resource="secrets") == []
    assert node.secret("db") is None  # web-p was the last consumer
    busy.release()


async def test_a_reference_kept_for_a_consumer_is_released_after_a_restart(
    agents: KubeAgents,
) -> None:
    """The agent restarts between the census that kept the reference and the class edit: the
    start-up pass reads what web-p holds from the API and lets go of db."""
    node = await agents.start()
    web_p, target_p, busy = await _kept_for_a_consumer_that_never_synced(node, [DB, CACHE])
    busy.release()
    await agents.stop(node)
    node.add_spc(secret_objects=[CACHE])
    again = await agents.start()
    await eventually(lambda: again.secret("db") is None, "db let go of by the start-up pass")
    assert owners(again.secret("cache")) == [RS]
    await _unpublish(again, web_p, target_p)
    assert again.secret("cache") is None


async def test_a_volume_that_goes_hands_what_it_holds_to_its_pods_other_volume(
    node: KubeHarness,
) -> None:
    """Gap: the pod's first volume failed to let go of db (renamed to db-v2) and then went
    while the pod's second volume, published after the rename, stayed: db's reference stayed
    with the ReplicaSet after the pod, the last consumer, had gone."""
    node.add_spc(secret_objects=[DB])
    rs = node.kube.store.put(replica_set("web-5d8f"))
    web, first = await _replica(node, rs, "web-5d8f-a")
    api_down = node.kube.faults.fail(500, verb="get", resource="secrets", name="db", times=None)
    await node.change_spc(secret_objects=[DB2])
    await eventually(lambda: api_down.hits > 0, "the first volume tried to let go of db")
    await eventually(lambda: node.secret("db-v2") is not None, "db-v2 synced")
    second = await node.publish(web, volume="more")
    await node.synced()
    await _unpublish(node, web, first)
    node.kube.faults.active.remove(api_down)
    await node.resync()
    assert node.secret("db") is None  # the second volume let go of it
    assert owners(node.secret("db-v2")) == [RS]
    await _unpublish(node, web, second, volume="more")
    assert node.secret("db-v2") is None


async def test_a_pod_that_synced_before_its_class_named_the_secret_lets_go_of_it(
    node: KubeHarness,
) -> None:
    """Gap: the class gains db. Its re-sync pass creates db for web-a, then waits on x-0's
    sync (x-0's status is being handed from one of its volumes to the other); meanwhile
    web-a goes (a census keeps the ReplicaSet's reference for web-b, whose class now names
    db) and web-b goes before the pass reaches it: web-b had recorded that it held nothing,
    so the reference stayed. x-0 (a bare pod) keeps db alive here."""
    node.cluster.secret_consumers.status_wait = 60.0
    node.add_spc(secret_objects=[CACHE])
    rs = node.kube.store.put(replica_set("web-5d8f"))
    web_a, target_a = await _replica(node, rs, "web-5d8f-a")
    x = await node.add_pod("x-0")
    x_first = await node.publish(x)
    await node.publish(x, volume="more")
    web_b, target_b = await _replica(node, rs, "web-5d8f-b")
    handover = node.kube.faults.hold(
        resource="secretproviderclasspodstatuses", name="x-0-default-app-secrets"
    )
    await _unpublish(node, x, x_first)
    await handover.wait_held()
    await node.change_spc(secret_objects=[CACHE, DB])
    await eventually(lambda: node.secret("db") is not None, "db created for web-a")
    assert owners(node.secret("db")) == [RS]
    await _unpublish(node, web_a, target_a)
    assert owners(node.secret("db")) == [RS]  # kept for web-b
    await _unpublish(node, web_b, target_b)
    handover.release()
    await node.settle()
    await eventually(lambda: status_owner("x-0") in _owners(node, "db"), "x-0 synced db")
    await node.resync()
    assert owners(node.secret("db")) == [status_owner("x-0")]


@pytest.fixture
async def timed(agents: KubeAgents) -> tuple[KubeHarness, ManualClock]:
    """An agent on a manual clock (the re-sync loop's retry waits for it), and a class
    syncing db."""
    clock = ManualClock()
    node = await agents.start(clock=clock)
    node.add_spc(secret_objects=[DB])
    return node, clock


async def _unpublished_with_a_failed_release(node: KubeHarness) -> tuple[Object, str]:
    """A pod of a ReplicaSet, synced, then unpublished while the API fails to read db."""
    web, target = await _replica(node, node.kube.store.put(replica_set("web-5d8f")), "web-5d8f-a")
    failed = node.kube.faults.fail(500, verb="get", resource="secrets", name="db")
    await _unpublish(node, web, target)
    assert failed.hits == 1 and owners(node.secret("db")) == [RS]
    return web, target


async def test_a_release_that_failed_on_the_api_is_tried_again(
    timed: tuple[KubeHarness, ManualClock],
) -> None:
    """Gap: the sync recorded the class's new names before letting go of the old ones, so a
    release the API failed was never tried again."""
    node, clock = timed
    await node.publish(await node.add_pod("web-0"))
    await node.synced()
    failed = node.kube.faults.fail(500, verb="get", resource="secrets", name="db")
    await node.change_spc(secret_objects=[DB2])
    await eventually(lambda: failed.hits == 1, "the release failed")
    await _retry_due(node, clock)
    await eventually(lambda: node.secret("db") is None, "released by the retry")
    assert owners(node.secret("db-v2")) == [status_owner("web-0")]


async def test_an_unpublish_whose_release_failed_on_the_api_tries_again(
    timed: tuple[KubeHarness, ManualClock],
) -> None:
    node, clock = timed
    await _unpublished_with_a_failed_release(node)
    await _retry_due(node, clock)
    await eventually(lambda: node.secret("db") is None, "released by the retry")
    assert not node.syncer.retrying


async def test_a_failed_release_never_takes_the_secret_from_the_volume_published_again(
    timed: tuple[KubeHarness, ManualClock],
) -> None:
    """The retry of an unpublish's failed release finds the pod's volume published again:
    the consumer holds db again, so the volume takes the record over and db is not touched."""
    node, clock = timed
    web, target = await _unpublished_with_a_failed_release(node)
    await node.publish(web)
    await node.synced()
    mark = node.kube.requests.mark()
    await _retry_due(node, clock)
    await eventually(lambda: not node.syncer.retrying, "the retry ran")
    await node.resync()  # after the retry (one volume lock)
    writes = node.kube.requests.since(mark, resource="secrets")
    assert [(r.verb, r.info.name) for r in writes if r.verb != "get"] == []
    await _unpublish(node, web, target)
    assert node.secret("db") is None


async def test_an_unpublish_refused_by_rbac_is_not_tried_again(node: KubeHarness) -> None:
    """A refusal (no RBAC rule for Secrets) cannot be helped by retrying: dropped, as before,
    so a node without sync RBAC keeps nothing of its removed volumes."""
    node.add_spc(secret_objects=[DB])
    web, target = await _replica(node, node.kube.store.put(replica_set("web-5d8f")), "web-5d8f-a")
    refused = node.kube.faults.fail(403, verb="get", resource="secrets", name="db")
    await _unpublish(node, web, target)
    assert refused.hits == 1 and not node.syncer.retrying
    assert owners(node.secret("db")) == [RS]  # left to garbage collection


async def test_a_users_own_secret_the_class_named_is_never_touched(node: KubeHarness) -> None:
    """The volume may hold what its class named, so letting go reads the user's Secret (no
    managed label, though owned by the pod's ReplicaSet) when the class drops it and when the
    pod goes, and changes nothing."""
    rs = node.kube.store.put(replica_set("web-5d8f"))
    users = secret("db", string_data={"password": "mine"})
    users["metadata"]["ownerReferences"] = [owner_reference(rs)]
    mine = node.kube.store.put(users)
    node.add_spc(secret_objects=[DB, CACHE])
    web, target = await _replica(node, rs, "web-5d8f-a")
    await node.change_spc(secret_objects=[CACHE])
    await node.resync()
    await _unpublish(node, web, target)
    assert node.secret("db") == mine and node.secret("cache") is None


async def test_a_sync_of_an_older_class_never_lets_go_of_what_the_class_names_now(
    node: KubeHarness,
) -> None:
    """The class drops cache, and names it again while the sync for the drop is under way:
    that sync, working from the older class, must not delete cache (which the next sync would
    create again, a moment without it for pods reading it)."""
    node.add_spc(secret_objects=[DB, CACHE])
    await _replica(node, node.kube.store.put(replica_set("web-5d8f")), "web-5d8f-a")
    stuck = node.kube.faults.hold(verb="get", resource="secrets", name="db", times=1)
    await node.change_spc(secret_objects=[DB])
    await stuck.wait_held()  # the sync for the drop, before it lets go of cache
    await node.change_spc(secret_objects=[DB, CACHE])
    mark = node.kube.requests.mark()
    stuck.release()
    await node.resync()  # after the stuck sync (one volume lock)
    writes = node.kube.requests.since(mark, resource="secrets")
    assert [(r.verb, r.info.name) for r in writes if r.verb != "get"] == []
    assert owners(node.secret("cache")) == [RS]
