"""The API client against the fake server over HTTP: its two rate-limit lanes, and what it sends
(user agent, bearer token, JSON merge patch) and translates (Status errors, whether the library
returns them or raises them, and watch lines over the client's limit)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agent import __version__
from agent.errors import ApiAlreadyExists, ApiNotFound, ApiThrottled, ApiUnavailable
from agent.k8s.api import ApiSettings, KubeApi, Lane
from agent.k8s.connection import load_configuration
from agent.k8s.lean_import import ApiException
from agent.k8s.pod_statuses import KubePodStatusStore
from agent.k8s.resources import PODS, SECRETS, SPC_V1
from agent.model import PodStatus
from tests.fakes.kube_api import FakeKubeApi, secret_provider_class
from tests.support.kube_agent import eventually


@pytest.fixture
def kube_api_options() -> dict[str, Any]:
    return {"token": "agent-token-0123456789"}


def _status(index: int) -> PodStatus:
    uid = f"uid-{index}"
    target = f"/var/lib/kubelet/pods/{uid}/volumes/kubernetes.io~csi/secrets/mount"
    name = f"web-{index}-default-app"
    return PodStatus(name, "default", f"web-{index}", uid, "app", target, "node-a", True, ())


@pytest.fixture
async def slow_api(kube_api: FakeKubeApi) -> AsyncIterator[KubeApi]:
    """One request per ~17 minutes per lane after a burst of one: the second request of a lane
    waits practically forever."""
    client = KubeApi(ApiSettings(qps=0.001, burst=1))
    client.connect(await load_configuration(str(kube_api.kubeconfig_path)))
    yield client
    await client.close()


async def test_background_traffic_never_delays_a_publish(
    kube_api: FakeKubeApi, slow_api: KubeApi
) -> None:
    kube_api.store.put(secret_provider_class("app", parameters={"a": "b"}))
    await slow_api.list(PODS, Lane.BACKGROUND)  # spends the background lane's burst
    waiting = asyncio.create_task(slow_api.list(PODS, Lane.BACKGROUND))
    try:
        found = await asyncio.wait_for(slow_api.get(SPC_V1, "default", "app", Lane.PUBLISH), 5)
        assert found["metadata"]["name"] == "app"
        assert not waiting.done()  # still queued behind its own lane's budget
    finally:
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting


async def test_pod_status_writes_behind_the_publish_never_delay_a_publish_read(
    kube_api: FakeKubeApi, slow_api: KubeApi
) -> None:
    """Kubelet does not wait for status writes (they follow the publish), so they must not
    spend the budget of what it does wait for (a class missing from the cache)."""
    kube_api.store.put(secret_provider_class("app", parameters={"a": "b"}))
    statuses = KubePodStatusStore(slow_api, "node-a", writers=2)
    writers = asyncio.create_task(statuses.run())
    try:
        for index in range(3):
            statuses.want(_status(index))
        written = "the first status write spent its lane's burst"
        await eventually(lambda: kube_api.requests.count(verb="create") == 1, written)
        found = await asyncio.wait_for(slow_api.get(SPC_V1, "default", "app", Lane.PUBLISH), 5)
        assert found["metadata"]["name"] == "app"
    finally:
        writers.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writers


def raise_for_status_as_later_releases_do(client: KubeApi, monkeypatch: pytest.MonkeyPatch) -> None:
    """kubernetes_asyncio after 36.1.0 (its commit c1a69be0) raises ApiException for a non-2xx
    answer even with ``_preload_content=False``; this makes the installed one do the same."""
    from kubernetes_asyncio.client.rest import RESTResponse  # after the lean import, no models

    rest_client = client._client.rest_client
    original = rest_client.request

    async def request(*args: Any, **kwargs: Any) -> Any:
        response = await original(*args, **kwargs)
        if not 200 <= response.status <= 299:
            # As the later release does; the stub's ClientResponse is wrong: the exception
            # reads .data and getheaders(), which only RESTResponse has.
            answer = RESTResponse(response, await response.read())
            raise ApiException(http_resp=answer)  # type: ignore[arg-type]
        return response

    monkeypatch.setattr(rest_client, "request", request)


@pytest.mark.parametrize("library", ["returns-errors", "raises-errors"])
async def test_requests_carry_the_agent_and_errors_come_back_translated(
    kube_api: FakeKubeApi, library: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = KubeApi()
    client.connect(await load_configuration(str(kube_api.kubeconfig_path)))
    if library == "raises-errors":
        raise_for_status_as_later_releases_do(client, monkeypatch)
    try:
        with pytest.raises(ApiNotFound, match="get secrets kube-system/none: HTTP 404 NotFound"):
            await client.get(SECRETS, "kube-system", "none", Lane.PUBLISH)
        body = {"metadata": {"name": "s"}, "stringData": {"k": "v"}}
        await client.create(SECRETS, "default", body, Lane.PUBLISH)
        with pytest.raises(ApiAlreadyExists):
            await client.create(SECRETS, "default", body, Lane.PUBLISH)
        await client.merge_patch(
            SECRETS, "default", "s", {"metadata": {"labels": {"a": "b"}}}, Lane.PUBLISH
        )
        kube_api.faults.throttle(retry_after=3, verb="get", resource="secrets")
        with pytest.raises(ApiThrottled) as caught:
            await client.get(SECRETS, "default", "s", Lane.PUBLISH)
        assert caught.value.retry_after == 3
    finally:
        await client.close()
    sent = kube_api.requests.filter(resource="secrets")
    assert {r.user_agent for r in sent} == {f"secrets-store-agent/{__version__}"}
    assert [r.content_type for r in sent if r.verb == "patch"] == ["application/merge-patch+json"]
    stored = kube_api.store.get("secrets", "default", "s")
    assert stored is not None and stored["metadata"]["labels"] == {"a": "b"}


async def test_a_watch_line_over_the_client_limit_is_one_clear_error(
    kube_api: FakeKubeApi,
) -> None:
    client = KubeApi()
    client.connect(await load_configuration(str(kube_api.kubeconfig_path)))
    version = str(kube_api.store.resource_version)
    # Bigger than any object etcd would store: only a broken server sends such a line.
    kube_api.store.put(secret_provider_class("huge", parameters={"objects": "x" * 5 * 2**20}))
    try:
        async with client.watch(SPC_V1, version) as stream:
            with pytest.raises(ApiUnavailable) as caught:
                await stream.next()
    finally:
        await client.close()
    assert caught.value.message == (
        "watch secretproviderclasses (all): a watch event is longer than the client's limit "
        "of 4194304 bytes"
    )
