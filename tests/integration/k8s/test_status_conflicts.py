"""Pod status writes that meet someone else's under every attempt (409 Conflict on each
conditional patch) against the fake API over HTTP: the write is not dropped but made again
after a backoff of that object's own, until it lands; a newer status that comes meanwhile
replaces the waiting one (never written behind it), the volume's delete ends the retries, an
object found to be another node's is left to it, and other objects' writes go on."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from agent.k8s.api import KubeApi
from agent.k8s.pod_statuses import KubePodStatusStore
from agent.model import ObjectVersion, PodStatus
from tests.fakes.kube_api import FakeKubeApi, pod
from tests.support.kube_agent import FAST_RETRIES, eventually

SPCPS = "secretproviderclasspodstatuses"
NODE_LABEL = "internal.secrets-store.csi.k8s.io/node-name"


def _status(version: str, index: int = 0) -> PodStatus:
    uid = f"uid-{index}"
    target = f"/var/lib/kubelet/pods/{uid}/volumes/kubernetes.io~csi/secrets/mount"
    objects = (ObjectVersion("username", version),)
    name = f"web-{index}-default-app"
    return PodStatus(name, "default", f"web-{index}", uid, "app", target, "node-a", True, objects)


NAME = _status("").name


class GatedSleep:
    """An injected ``sleep``: records each delay and returns only once the test releases it."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self._gate = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await self._gate.wait()

    def release(self) -> None:
        self._gate.set()


@contextlib.asynccontextmanager
async def writing(
    api: KubeApi, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
) -> AsyncIterator[KubePodStatusStore]:
    """The store's writers, running; its first status (v1) already written."""
    statuses = KubePodStatusStore(api, "node-a", backoff=FAST_RETRIES, sleep=sleep)
    task = asyncio.create_task(statuses.run())
    try:
        statuses.want(_status("v1"))
        await statuses.wait_idle()
        yield statuses
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _versions(kube: FakeKubeApi, name: str = NAME) -> list[str]:
    found = kube.store.get(SPCPS, "default", name)
    assert found is not None, f"no status {name}"
    return [entry["version"] for entry in found["status"]["objects"]]


def _written(kube: FakeKubeApi) -> list[list[Any]]:
    """The object versions of every patch the server took."""
    return [
        [entry["version"] for entry in request.body["status"]["objects"]]
        for request in kube.requests.filter(verb="patch", resource=SPCPS, status=200)
    ]


async def test_a_write_that_conflicts_at_every_attempt_is_made_again_until_it_lands(
    kube_api: FakeKubeApi, api: KubeApi
) -> None:
    async with writing(api) as statuses:
        conflicts = kube_api.faults.fail(409, verb="patch", resource=SPCPS, times=7)
        statuses.want(_status("v2"))  # 3 attempts, a pause, 3, a longer pause, 1 more, landed
        await asyncio.wait_for(statuses.wait_idle(), 10)
        assert conflicts.hits == 7
        assert _versions(kube_api) == ["v2"]
        assert _written(kube_api) == [["v2"]]

        statuses.want(_status("v3"))  # the object's backoff is over: one write, as usual
        await statuses.wait_idle()
        assert _written(kube_api) == [["v2"], ["v3"]]


async def test_a_newer_status_during_the_backoff_replaces_the_waiting_one(
    kube_api: FakeKubeApi, api: KubeApi
) -> None:
    gate = GatedSleep()
    async with writing(api, gate) as statuses:
        kube_api.faults.fail(409, verb="patch", resource=SPCPS, times=3)
        statuses.want(_status("v2"))
        await eventually(lambda: len(gate.delays) == 1, "v2 waiting out its backoff")
        tried = kube_api.requests.count(verb="patch", resource=SPCPS)
        assert tried == 3

        statuses.want(_status("v3"))  # the volume's next status, e.g. after a rotation
        statuses.want(_status("v1", index=1))  # another object's write is not held up
        await eventually(
            lambda: kube_api.requests.count(verb="create", resource=SPCPS, status=201) == 2,
            "the other object written during the backoff",
        )
        assert kube_api.requests.count(verb="patch", resource=SPCPS) == tried  # v3 waits too
        assert statuses.pending == 1

        gate.release()
        await asyncio.wait_for(statuses.wait_idle(), 10)
        assert _versions(kube_api) == ["v3"]
        assert _written(kube_api) == [["v3"]]  # v2 never went out, before v3 or after it


async def test_the_volumes_delete_ends_the_retries(kube_api: FakeKubeApi, api: KubeApi) -> None:
    gate = GatedSleep()
    async with writing(api, gate) as statuses:
        kube_api.faults.fail(409, verb="patch", resource=SPCPS, times=None)  # never lands
        statuses.want(_status("v2"))
        await eventually(lambda: len(gate.delays) == 1, "v2 waiting out its backoff")
        await statuses.delete("default", NAME)  # the volume is gone
        gate.release()
        await asyncio.wait_for(statuses.wait_idle(), 10)
        assert kube_api.store.get(SPCPS, "default", NAME) is None
        assert kube_api.requests.count(verb="patch", resource=SPCPS) == 3


async def test_an_object_another_node_took_over_meanwhile_is_left_to_it(
    kube_api: FakeKubeApi, api: KubeApi
) -> None:
    """The retry reads what changed the object, as every write does: web-0 was recreated
    on node-b, whose agent took the status over, so node-a's waiting write leaves it."""
    gate = GatedSleep()
    async with writing(api, gate) as statuses:
        kube_api.faults.fail(409, verb="patch", resource=SPCPS, times=3)
        statuses.want(_status("v2"))
        await eventually(lambda: len(gate.delays) == 1, "v2 waiting out its backoff")
        new = kube_api.store.put(pod("web-0", node="node-b", uid="uid-new"))
        taken = kube_api.store.get(SPCPS, "default", NAME)
        assert taken is not None
        taken["metadata"]["labels"][NODE_LABEL] = "node-b"
        taken["metadata"]["ownerReferences"][0]["uid"] = new["metadata"]["uid"]
        taken["status"]["objects"] = [{"id": "username", "version": "node-b's"}]
        kube_api.store.put(taken)

        gate.release()
        await asyncio.wait_for(statuses.wait_idle(), 10)
        assert _versions(kube_api) == ["node-b's"]
        assert _written(kube_api) == []
