"""Publish and unpublish in Kubernetes mode through the agent's real socket, against the fake
API over HTTP: the class comes from the cache (no read), one status write per publish, the
status object as upstream §6, deletion on unpublish, and the class lookup's boundaries."""

from __future__ import annotations

import os

import grpc
import pytest

from agent import __version__
from agent.errors import ProviderError
from tests.fakes.kube_api import NODE_LABEL, FakeKubeApi, secret_provider_class
from tests.support.kube_agent import SPC, KubeAgents, KubeHarness


def _writes(kube: FakeKubeApi, mark: int) -> list[str]:
    return [f"{r.verb} {r.resource}" for r in kube.requests.since(mark) if r.method != "GET"]


def _reads(kube: FakeKubeApi, mark: int) -> list[str]:
    return [f"{r.verb} {r.resource}" for r in kube.requests.since(mark) if r.method == "GET"]


async def test_publish_costs_one_write_and_no_read_and_records_status_as_upstream(
    node: KubeHarness,
) -> None:
    web = await node.add_pod("web-0")
    mark = node.kube.requests.mark()
    target = await node.publish(web)
    await node.settle()
    assert {"..data", "password", "username"} <= set(os.listdir(target))
    assert _writes(node.kube, mark) == ["create secretproviderclasspodstatuses"]
    assert _reads(node.kube, mark) == []
    status = node.status(f"web-0-default-{SPC}")
    assert status is not None
    meta = status["metadata"]
    assert meta["labels"] == {NODE_LABEL: "node-a"}
    assert meta["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Pod", "name": "web-0", "uid": web["metadata"]["uid"]}
    ]
    assert status["status"]["podName"] == "web-0"
    assert status["status"]["secretProviderClassName"] == SPC
    assert status["status"]["mounted"] is True
    assert status["status"]["targetPath"] == target
    assert [o["id"] for o in status["status"]["objects"]] == ["password", "username"]
    agents = {r.user_agent for r in node.kube.requests.since(0)}
    assert agents == {f"secrets-store-agent/{__version__}"}
    exposition = node.agent.metrics.exposition()[0].decode()
    # client-go's label: host:port, no scheme.
    host = f"127.0.0.1:{node.kube.port}"
    assert f'rest_client_requests_total{{code="201",host="{host}",method="POST"}}' in exposition


async def test_republish_costs_nothing_and_unpublish_deletes_the_status(node: KubeHarness) -> None:
    web = await node.add_pod("web-0")
    target = await node.publish(web)
    await node.settle()
    mark = node.kube.requests.mark()
    await node.publish(web)
    await node.settle()
    assert node.kube.requests.since(mark) == []
    request = node.request(web)
    await node.kubelet.unpublish(request.volume_id, target)
    await node.settle()
    assert node.statuses() == []
    assert _writes(node.kube, mark) == ["delete secretproviderclasspodstatuses"]
    assert not os.path.exists(target)


async def test_a_class_in_another_namespace_is_never_found(node: KubeHarness) -> None:
    node.add_spc("shared", namespace="other")
    web = await node.add_pod("web-0", spc="shared")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await node.publish(web, spc="shared")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "default/shared" in (caught.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as slashed:
        await node.publish(web, spc="other/shared")
    assert slashed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert not os.path.exists(node.target(web["metadata"]["uid"]))
    await node.settle()
    assert node.statuses() == []


async def test_v1alpha1_classes_work_and_a_class_missing_from_the_cache_is_read(
    node: KubeHarness,
) -> None:
    # Keep the class watch down so the new class cannot reach the cache first.
    node.kube.faults.fail(500, verb="watch", resource="secretproviderclasses", times=None)
    node.kube.store.drop_watches("secretproviderclasses")
    node.kube.store.put(
        secret_provider_class(
            "legacy", provider="fake", parameters={"objects": "x"}, version="v1alpha1"
        )
    )
    web = await node.add_pod("web-0", spc="legacy")
    mark = node.kube.requests.mark()
    await node.publish(web, spc="legacy")
    assert _reads(node.kube, mark).count("get secretproviderclasses") == 1
    node.kube.faults.clear()
    await node.settle()
    assert node.status("web-0-default-legacy") is not None


async def test_first_publish_after_start_reads_nothing(agents: KubeAgents) -> None:
    node = await agents.start()
    web = await node.add_pod("web-0")
    mark = node.kube.requests.mark()
    await node.publish(web)
    assert _reads(node.kube, mark) == []


async def test_a_second_volume_of_one_class_never_takes_the_first_ones_status(
    node: KubeHarness,
) -> None:
    """Upstream's name ``<pod>-<namespace>-<class>`` is shared by both volumes; it describes the
    first while it lives, and passes to the second when the first is unpublished."""
    web = await node.add_pod("web-0")
    first = await node.publish(web, volume="vol-a")
    node.provider.error = ProviderError("denied")
    with pytest.raises(grpc.aio.AioRpcError):
        await node.publish(web, volume="vol-b")
    node.provider.error = None
    second = await node.publish(web, volume="vol-b")
    await node.settle()
    [status] = node.statuses()
    assert status["status"]["targetPath"] == first
    await node.kubelet.unpublish(node.request(web, volume="vol-a").volume_id, first)
    await node.settle()
    [status] = node.statuses()
    assert status["status"]["targetPath"] == second
