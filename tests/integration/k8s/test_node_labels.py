"""The agent's own Node through the API client against the fake server: one read shared by
concurrent callers, kept, refreshed behind the callers on the background lane, and failures
translated (404, 403 naming the RBAC rule)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agent.aio.tasks import TaskSet
from agent.errors import ApiForbidden, ApiUnavailable, NodeNotFound
from agent.k8s.api import KubeApi, Lane
from agent.k8s.connection import load_configuration
from agent.k8s.nodes import REFRESH_SECONDS, RETRY_SECONDS, KubeNodeLabels
from agent.k8s.resources import Resource
from tests.fakes.kube_api import FakeKubeApi, node
from tests.support.clock import ManualClock

REGION = "topology.kubernetes.io/region"


class LaneRecordingApi(KubeApi):
    """The real client, remembering which lane each GET used."""

    def __init__(self) -> None:
        super().__init__()
        self.lanes: list[Lane] = []

    async def get(
        self, resource: Resource, namespace: str | None, name: str, lane: Lane
    ) -> dict[str, Any]:
        self.lanes.append(lane)
        return await super().get(resource, namespace, name, lane)


@pytest.fixture
async def api(kube_api: FakeKubeApi) -> AsyncIterator[LaneRecordingApi]:
    client = LaneRecordingApi()
    client.connect(await load_configuration(str(kube_api.kubeconfig_path)))
    yield client
    await client.close()


@pytest.fixture
async def tasks() -> AsyncIterator[TaskSet]:
    owned = TaskSet("test")
    yield owned
    await owned.close()


def gets(kube_api: FakeKubeApi) -> int:
    return kube_api.requests.count(verb="get", resource="nodes")


async def test_concurrent_callers_share_one_read_on_the_publish_lane(
    kube_api: FakeKubeApi, api: LaneRecordingApi, tasks: TaskSet
) -> None:
    kube_api.store.put(node("node-a", labels={REGION: "eu-west-1"}))
    held = kube_api.faults.hold(verb="get", resource="nodes", times=1)
    labels = KubeNodeLabels(api, "node-a", tasks.spawn)
    callers = [asyncio.create_task(labels.labels()) for _ in range(5)]
    await held.wait_held()
    held.release()

    results = await asyncio.gather(*callers)
    assert all(result[REGION] == "eu-west-1" for result in results)
    assert results[0]["kubernetes.io/hostname"] == "node-a"
    assert (await labels.labels())[REGION] == "eu-west-1"
    assert gets(kube_api) == 1
    assert api.lanes == [Lane.PUBLISH]  # a publish waits for the first read


async def test_a_stale_cache_answers_at_once_and_refreshes_in_the_background(
    kube_api: FakeKubeApi, api: LaneRecordingApi, tasks: TaskSet
) -> None:
    clock = ManualClock()
    kube_api.store.put(node("node-a", labels={REGION: "eu-west-1", "tier": "a"}))
    labels = KubeNodeLabels(api, "node-a", tasks.spawn, clock=clock.now)
    assert (await labels.labels())["tier"] == "a"
    kube_api.store.put(node("node-a", labels={REGION: "eu-west-1", "tier": "b"}))

    clock.advance(REFRESH_SECONDS - 1)
    assert (await labels.labels())["tier"] == "a"
    assert len(tasks) == 0 and gets(kube_api) == 1
    clock.advance(1)
    assert (await labels.labels())["tier"] == "a"  # the cached answer; the refresh runs behind
    assert (await labels.labels())["tier"] == "a"  # one refresh at a time
    await tasks.wait()
    assert (await labels.labels())["tier"] == "b"
    assert api.lanes == [Lane.PUBLISH, Lane.BACKGROUND]


async def test_a_failed_refresh_keeps_the_labels_and_retries_later(
    kube_api: FakeKubeApi, api: LaneRecordingApi, tasks: TaskSet
) -> None:
    clock = ManualClock()
    kube_api.store.put(node("node-a", labels={REGION: "eu-west-1"}))
    labels = KubeNodeLabels(api, "node-a", tasks.spawn, clock=clock.now)
    await labels.labels()
    kube_api.faults.fail(503, verb="get", resource="nodes")
    clock.advance(REFRESH_SECONDS)
    await labels.labels()
    await tasks.wait()

    assert (await labels.labels())[REGION] == "eu-west-1"
    clock.advance(RETRY_SECONDS - 1)
    await labels.labels()
    assert len(tasks) == 0 and gets(kube_api) == 2
    clock.advance(1)
    await labels.labels()
    await tasks.wait()
    assert gets(kube_api) == 3


async def test_callers_queued_behind_a_failed_read_get_its_error(
    kube_api: FakeKubeApi, api: LaneRecordingApi, tasks: TaskSet
) -> None:
    kube_api.store.put(node("node-a"))
    held = kube_api.faults.hold(verb="get", resource="nodes", times=1, status=503)
    labels = KubeNodeLabels(api, "node-a", tasks.spawn)
    callers = [asyncio.create_task(labels.labels()) for _ in range(3)]
    await held.wait_held()
    held.release()

    results = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(result, ApiUnavailable) for result in results)
    assert gets(kube_api) == 1
    assert (await labels.labels())["kubernetes.io/hostname"] == "node-a"  # not kept: read again
    assert gets(kube_api) == 2


async def test_a_missing_node_and_a_forbidden_read_say_what_to_fix(
    kube_api: FakeKubeApi, api: LaneRecordingApi, tasks: TaskSet
) -> None:
    with pytest.raises(NodeNotFound, match=r"node node-x not found \(--nodeid must be"):
        await KubeNodeLabels(api, "node-x", tasks.spawn).labels()

    kube_api.store.put(node("node-a"))
    kube_api.faults.fail(403, verb="get", resource="nodes")
    with pytest.raises(ApiForbidden) as raised:
        await KubeNodeLabels(api, "node-a", tasks.spawn).labels()
    message = raised.value.message
    assert message.startswith("get nodes node-a: HTTP 403 Forbidden")
    assert "nodes get" in message and "rbac.install=true" in message


async def test_a_node_whose_metadata_is_not_an_object_has_no_labels(
    kube_api: FakeKubeApi, api: LaneRecordingApi, tasks: TaskSet
) -> None:
    """A broken server's answer: no labels (the region then comes from elsewhere), not a
    crash of the caller."""
    kube_api.faults.answer(b'{"kind": "Node", "metadata": "node-a"}', verb="get", resource="nodes")
    labels = KubeNodeLabels(api, "node-a", tasks.spawn)
    assert await labels.labels() == {}
