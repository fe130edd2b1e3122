"""API outages: publishes with a cached class keep working, status writes and events wait and
arrive once the API is back, /readyz says what is not synced, kubelet is never blocked."""

from __future__ import annotations

import asyncio
import io
import json
import os
import time

import aiohttp
import grpc
import pytest
from structlog.testing import capture_logs

from agent.errors import ProviderError
from agent.logs import configure_logging
from tests.fakes.kube_api import FakeKubeApi
from tests.support.kube_agent import SPC, KubeAgents, KubeHarness, eventually


async def _readyz(node: KubeHarness) -> tuple[int, str]:
    port = node.agent.web.bound_ports["health"]
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/readyz") as response,
    ):
        return response.status, await response.text()


async def test_publishes_keep_working_while_the_api_is_down(node: KubeHarness) -> None:
    web, api, job = [await node.add_pod(n) for n in ("web-0", "api-0", "job-0")]
    await node.kube.down()
    started = time.perf_counter()
    web_target = await node.publish(web)
    api_target = await node.publish(api)
    node.provider.error = ProviderError("permission denied for path secret/job")
    with pytest.raises(grpc.aio.AioRpcError, match="permission denied"):
        await node.publish(job)
    node.provider.error = None
    await node.kubelet.unpublish(node.request(api).volume_id, api_target)
    assert time.perf_counter() - started < 2.0  # never waited for the API
    assert os.path.exists(web_target) and not os.path.exists(api_target)
    await eventually(lambda: node.cluster.statuses.problem() != "", "status writes waiting")
    status, body = await _readyz(node)
    assert status == 503
    assert "[-]kubernetes-pods failed: watch failing" in body
    assert "[-]kubernetes-secretproviderclasses failed" in body
    assert "[-]kubernetes-pod-statuses failed:" in body and "waiting" in body
    assert "[+]csi-socket ok" in body

    await node.kube.up()
    await node.settle()
    names = [s["metadata"]["name"] for s in node.statuses()]
    assert names == [f"web-0-default-{SPC}"]  # the unpublished one never lands
    await eventually(lambda: len(node.events()) == 1, "the queued event")
    assert node.events()[0]["reason"] == "GRPCProviderError"
    await eventually(lambda: _ready(node), "caches synced again")
    readiness = await _readyz(node)
    assert readiness == (200, "ok\n"), readiness[1]


def _ready(node: KubeHarness) -> bool:
    return all(informer.problem() == "" for informer in node.cluster.informers)


async def test_status_writes_honour_throttling_and_server_errors(node: KubeHarness) -> None:
    web = await node.add_pod("web-0")
    throttle = node.kube.faults.throttle(
        retry_after=1, verb="create", resource="secretproviderclasspodstatuses"
    )
    failure = node.kube.faults.fail(500, verb="create", resource="secretproviderclasspodstatuses")
    started = time.monotonic()
    await node.publish(web)
    await node.settle()
    assert throttle.hits == 1 and failure.hits == 1
    assert time.monotonic() - started >= 1.0  # Retry-After was honoured
    assert node.status(f"web-0-default-{SPC}") is not None


async def test_status_left_by_another_node_is_taken_over(node: KubeHarness) -> None:
    web = await node.add_pod("web-0")
    name = f"web-0-default-{SPC}"
    node.kube.store.put(
        {
            "apiVersion": "secrets-store.csi.x-k8s.io/v1",
            "kind": "SecretProviderClassPodStatus",
            "metadata": {
                "name": name,
                "namespace": "default",
                "labels": {"internal.secrets-store.csi.k8s.io/node-name": "node-b"},
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Pod", "name": "web-0", "uid": "old-uid"}
                ],
            },
            "status": {
                "podName": "web-0",
                "secretProviderClassName": SPC,
                "mounted": True,
                "targetPath": "/var/lib/kubelet/pods/old-uid/volumes/x/mount",
            },
        }
    )
    target = await node.publish(web)
    await node.settle()
    taken = node.status(name)
    assert taken is not None
    assert taken["metadata"]["labels"]["internal.secrets-store.csi.k8s.io/node-name"] == "node-a"
    assert taken["metadata"]["ownerReferences"][0]["uid"] == web["metadata"]["uid"]
    assert taken["status"]["targetPath"] == target
    assert node.kube.requests.count(verb="create", resource="secretproviderclasspodstatuses") == 1
    assert node.kube.requests.count(verb="patch", resource="secretproviderclasspodstatuses") == 1


async def test_agent_started_while_the_api_is_down_serves_and_catches_up(
    agents: KubeAgents, kube_api: FakeKubeApi
) -> None:
    await kube_api.down()
    node = await agents.start(cache_sync_timeout=0.5)
    status, body = await _readyz(node)
    assert status == 503
    assert "[-]kubernetes-secretproviderclasses failed: not synced yet" in body
    assert "[+]csi-socket ok" in body
    web_uid = "00000000-0000-0000-0000-0000000000aa"
    request = node.request({"metadata": {"name": "web-0", "namespace": "default", "uid": web_uid}})
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await node.kubelet.publish(request)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE  # kubelet retries
    assert not os.path.exists(request.target_path)
    await kube_api.up()
    await eventually(lambda: _ready(node), "caches synced after the API came back")
    web = await node.add_pod("web-0", uid=web_uid)
    await node.kubelet.publish(node.request(web))
    await node.settle()
    assert node.status(f"web-0-default-{SPC}") is not None
    # The HMAC key is fetched (created) once the API answers, whatever the start-up waited for.
    await eventually(
        lambda: (
            kube_api.store.get("secrets", "kube-system", "secrets-store-agent-hmac-key") is not None
        ),
        "the HMAC key Secret",
    )


async def test_status_writes_the_api_never_took_are_named_at_stop(
    agents: KubeAgents, kube_api: FakeKubeApi
) -> None:
    node = await agents.start()
    web = await node.add_pod("web-0")
    await kube_api.down()
    await node.publish(web)
    await eventually(lambda: node.cluster.statuses.problem() != "", "the write waiting")
    lines = io.StringIO()
    configure_logging(json=True, verbosity=0, stream=lines)
    node.cluster.flush_at_stop = 0.0  # no point waiting for an API that is down
    await agents.stop(node, unpublish=True)
    events = {e["event"]: e for e in map(json.loads, lines.getvalue().splitlines())}
    unwritten = events["pod_status.unwritten_at_stop"]
    assert unwritten["pending"] == 1
    assert "Cannot connect to host" in unwritten["error"]


async def test_status_writes_someone_else_kept_changing_are_named_at_stop(
    agents: KubeAgents, kube_api: FakeKubeApi
) -> None:
    """A write that met another writer's change (409) at each attempt is made again after a
    backoff; the API answers all the while, so there is no API error to name. Before, the
    line at stop said ``error=""``."""
    node = await agents.start()
    web = await node.add_pod("web-0")
    statuses = "secretproviderclasspodstatuses"
    kube_api.faults.fail(409, verb="create", resource=statuses, times=3)
    again = kube_api.faults.hold(status=409, verb="create", resource=statuses)
    await node.publish(web)
    await asyncio.wait_for(again.wait_held(), 10)  # made again after its backoff, and waiting
    lines = io.StringIO()
    configure_logging(json=True, verbosity=0, stream=lines)
    node.cluster.flush_at_stop = 0.0
    try:
        await agents.stop(node, unpublish=True)
    finally:
        again.release()
    events = {e["event"]: e for e in map(json.loads, lines.getvalue().splitlines())}
    unwritten = events["pod_status.unwritten_at_stop"]
    assert unwritten["pending"] == 1
    assert unwritten["error"] == (
        f"conflict: pod status default/web-0-default-{SPC} changed under each of its last 3 writes"
    )


async def test_a_namespace_whose_statuses_are_refused_never_holds_up_the_others(
    node: KubeHarness,
) -> None:
    """An admission policy of one namespace refuses its status objects (a webhook's denial is
    403): that object is retried on its own, the other namespaces' statuses are written, and
    the agent stays ready (before: every writer paused for it, and /readyz failed for as long
    as the pod ran, stalling a DaemonSet rollout)."""
    node.add_spc(namespace="locked")
    refused = node.kube.faults.fail(
        403, verb="create", resource="secretproviderclasspodstatuses", namespace="locked",
        times=None,
    )  # fmt: skip
    with capture_logs() as logs:
        await node.publish(await node.add_pod("web-0", namespace="locked"))
        await eventually(lambda: refused.hits >= 1, "the refused write")
        # Nothing written yet: as far as the agent knows, its RBAC lacks the rule.
        assert "403 Forbidden" in node.cluster.statuses.problem()
        for name in ("api-0", "api-1"):
            await node.publish(await node.add_pod(name))
        await eventually(lambda: len(node.statuses("default")) == 2, "the others' statuses")
        tries = refused.hits
        await eventually(lambda: refused.hits > tries, "the refused object tried again")
    assert node.cluster.statuses.problem() == ""
    assert node.cluster.statuses.pending == 1
    assert any(
        line["event"] == "pod_status.write_refused" and line["namespace"] == "locked"
        for line in logs
    )
