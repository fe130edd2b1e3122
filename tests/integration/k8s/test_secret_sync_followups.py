"""Secret sync never leaves a volume to the next full re-sync pass (5 minutes by default),
through the agent's socket against the fake API: a volume whose status object was not written
within the sync's wait (a burst of pod starts: status and Secret writes share the API's rate
limit) is synced the moment the status lands, and a sync that failed outside a pass is retried
after the backoff's first delay. The agent's clock is a manual one that never moves unless a
test moves it, so no timer can stand in for the events tested here."""

from __future__ import annotations

import pytest

from tests.fakes.kube_api import owner_reference, replica_set
from tests.integration.k8s.test_secret_sync import entry, owners, status_owner
from tests.support.clock import ManualClock
from tests.support.kube_agent import KubeAgents, KubeHarness, eventually

DB = [entry("db", "Opaque", ("password", "password"))]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def node(agents: KubeAgents, clock: ManualClock) -> KubeHarness:
    harness = await agents.start(clock=clock)
    await eventually(lambda: harness.secret_resync.full_passes == 1, "the pass at start")
    harness.add_spc(secret_objects=DB)
    return harness


@pytest.mark.parametrize("owned", [False, True], ids=["bare pod", "pod with owners"])
async def test_a_sync_deferred_for_its_status_runs_as_soon_as_the_status_lands(
    node: KubeHarness, owned: bool
) -> None:
    node.cluster.secret_consumers.status_wait = 0.0  # the sync's wait runs out at once
    held = node.kube.faults.hold(verb="create", resource="secretproviderclasspodstatuses")
    rs = node.kube.store.put(replica_set("web-5d8f"))
    web = await node.add_pod("web-0", owner_references=[owner_reference(rs)] if owned else [])
    await node.publish(web)
    await held.wait_held()
    await node.synced()  # the publish's sync gave up waiting for the status
    # Not before its status exists, even with owners (docs/secret-sync.md, rule 1).
    assert node.secret("db") is None
    held.release()
    await eventually(lambda: node.secret("db") is not None, "the Secret once the status landed")
    expected = ["ReplicaSet/web-5d8f"] if owned else [status_owner("web-0")]
    assert owners(node.secret("db")) == expected
    assert (
        node.secret_resync.full_passes == 1
    )  # no full pass did it (nor a timer: time stood still)
    assert not node.syncer.failing


async def test_a_failure_outside_a_pass_is_retried_after_the_first_backoff_delay(
    node: KubeHarness, clock: ManualClock
) -> None:
    resync = node.secret_resync
    outage = node.kube.faults.fail(503, resource="secrets", times=None)
    await node.publish(await node.add_pod("web-0"))
    await node.synced()  # the publish's sync (no pass) could not read the Secret
    assert outage.hits >= 1 and node.syncer.failing
    node.kube.faults.remove(outage)
    await eventually(lambda: resync.retry_at is not None, "a retry armed")
    assert resync.retry_at is not None
    delay = resync.retry_at - clock.now()
    assert 0 < delay <= 5.0  # the backoff's first delay, not the 300 s to the next full pass
    clock.advance(delay)
    await eventually(lambda: node.secret("db") is not None, "the Secret, at the retry")
    assert owners(node.secret("db")) == [status_owner("web-0")]
    assert resync.full_passes == 1
    await eventually(lambda: not node.syncer.failing, "nothing failing")
