"""Bad input in Kubernetes mode: classes with wrongly typed or missing fields, a token map that
is not JSON. Each fails the publish with a message naming the field, leaves no mount and no
status behind, and (when the pod's owner can fix it) puts one Warning event on the pod."""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

import grpc
import pytest

from agent.errors import InvalidSecretProviderClass
from agent.k8s.api import KubeApi
from agent.k8s.connection import load_configuration
from agent.k8s.events import EventSettings, KubeEventRecorder
from agent.k8s.spcs import KubeSecretProviderClassSource
from agent.model import PodIdentity
from tests.fakes.kube_api import FakeKubeApi
from tests.support.kube_agent import KubeHarness, eventually

Object = dict[str, Any]


def _class(spec: object) -> Object:
    return {
        "apiVersion": "secrets-store.csi.x-k8s.io/v1",
        "kind": "SecretProviderClass",
        "metadata": {"name": "broken", "namespace": "default"},
        "spec": spec,
    }


@pytest.mark.parametrize(
    ("spec", "reason", "message"),
    [
        (
            {"provider": "fake", "parameters": {"ttl": 30}},
            "FailedToMount",
            'spec.parameters.ttl: Invalid value: "integer"',
        ),
        ({"provider": 7, "parameters": {"a": "b"}}, "FailedToMount", "spec.provider must be"),
        ({"provider": "fake"}, "FailedToMount", "spec.parameters is not set"),
        ({"parameters": {"a": "b"}}, "FailedToMount", "spec.provider is not set"),
        ("not-a-mapping", "FailedToMount", "spec must be a mapping"),
        (
            {"provider": "fake", "parameters": {"a": "b"}, "secretObjects": "x"},
            "FailedToMount",
            "spec.secretObjects must be a list",
        ),
    ],
)
async def test_malformed_class_names_the_field_and_leaves_nothing(
    node: KubeHarness, spec: object, reason: str, message: str
) -> None:
    node.kube.store.put(_class(spec))  # the fake's put skips the CRD's schema, as a bad server
    web = await node.add_pod("web-0", spc="broken")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await node.publish(web, spc="broken")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = caught.value.details() or ""
    assert message in details
    assert "default/broken" in details
    assert not os.path.exists(node.target(web["metadata"]["uid"]))
    await node.settle()
    assert node.statuses() == []
    await eventually(lambda: len(node.events()) == 1, "one Warning event on the pod")
    event = node.events()[0]
    assert (event["type"], event["reason"]) == ("Warning", reason)
    assert event["involvedObject"]["uid"] == web["metadata"]["uid"]
    assert message in event["message"]


async def test_token_map_that_is_not_json_is_refused_before_anything_happens(
    node: KubeHarness,
) -> None:
    web = await node.add_pod("web-0")
    request = node.request(web)
    request.volume_context["csi.storage.k8s.io/serviceAccount.tokens"] = '{"vault": {"token": "eyJ'
    mark = node.kube.requests.mark()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await node.kubelet.publish(request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "serviceAccount.tokens is not valid JSON" in (caught.value.details() or "")
    assert "eyJ" not in (caught.value.details() or "")
    assert not os.path.exists(request.target_path)
    await node.settle()
    assert node.kube.requests.since(mark) == []  # no status, no event: kubelet's doing
    assert node.provider.requests == []


@pytest.mark.parametrize("name", ["app..secrets", "app.-secrets", "app-.secrets"])
async def test_a_class_name_the_api_server_would_refuse_is_not_looked_up(
    node: KubeHarness, name: str
) -> None:
    """Kubernetes mode checks a requested class name by the API server's rule, as standalone
    mode checks manifests (``agent.documents.names``). Before: its own looser pattern let
    these through, to a read from the API and NOT_FOUND."""
    web = await node.add_pod("web-0", spc=name)
    mark = node.kube.requests.mark()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await node.publish(web, spc=name)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.details() or "").startswith(
        f"secretProviderClass {name!r} is not a lowercase RFC 1123 subdomain"
    )
    assert node.kube.requests.since(mark, resource="secretproviderclasses") == []
    assert node.provider.requests == []


@pytest.mark.parametrize("name", ["../web", "Web_SA", "web..sa"])
async def test_a_service_account_name_the_api_server_would_refuse_is_not_looked_up(
    node: KubeHarness, name: str
) -> None:
    """As standalone mode (tests/integration/test_hostile_requests.py): refused where the
    pod's name and namespace are checked, before any API read or provider call."""
    web = await node.add_pod("web-0")
    mark = node.kube.requests.mark()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await node.publish(web, service_account=name)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == (
        f"csi.storage.k8s.io/serviceAccount.name in volume context: {name!r} is not a "
        "lowercase RFC 1123 subdomain (a-z, 0-9, '-' and '.', starting and ending with a "
        "letter or digit), as Kubernetes requires"
    )
    await node.settle()
    assert node.kube.requests.since(mark) == []  # no read, no status, no event: kubelet's doing
    assert node.provider.requests == []


async def test_repeated_failures_become_one_aggregated_event(node: KubeHarness) -> None:
    web = await node.add_pod("web-0", spc="missing")
    for _ in range(5):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await node.publish(web, spc="missing")
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    await eventually(lambda: len(node.events()) == 1, "the first event")
    assert node.events()[0]["reason"] == "SecretProviderClassNotFound"
    assert node.kube.requests.count(verb="create", resource="events") == 1
    assert node.cluster.events.pending == 1  # the other four wait to be sent as a count


async def test_aggregated_event_count_reaches_the_api(kube_api: FakeKubeApi) -> None:
    """The recorder on its own, with no minimum interval between updates: repeats become a
    merge patch of ``count``; after the window a new Event starts."""
    api = KubeApi()
    api.connect(await load_configuration(str(kube_api.kubeconfig_path)))
    now = [1_000_000.0]
    recorder = KubeEventRecorder(api, "node-a", EventSettings(min_interval=0.0), lambda: now[0])
    task = asyncio.create_task(recorder.run())
    pod = PodIdentity("default", "web-0", "uid-1")
    try:
        recorder.warning(pod, "GRPCProviderError", "permission denied")
        await eventually(lambda: len(kube_api.store.list("events")) == 1, "created")
        for _ in range(3):
            recorder.warning(pod, "GRPCProviderError", "permission denied")
        await eventually(
            lambda: kube_api.store.list("events")[0].get("count") == 4, "count patched"
        )
        assert kube_api.requests.count(verb="patch", resource="events") >= 1
        now[0] += 3600  # outside the ten-minute window: a new event
        recorder.warning(pod, "GRPCProviderError", "permission denied")
        await eventually(lambda: len(kube_api.store.list("events")) == 2, "a second event")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await api.close()


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ("not-a-mapping", "spec must be a mapping"),
        (["provider", "fake"], "spec must be a mapping"),
        ({"provider": ["fake"]}, "spec.provider must be a string"),
        ({"provider": "fake", "parameters": "roleName=app"}, "spec.parameters must be a mapping"),
        ({"provider": "fake", "parameters": ["a", "b"]}, "spec.parameters must be a mapping"),
        (
            {"provider": "fake", "parameters": {"a": None}},
            'spec.parameters.a: Invalid value: "null"',
        ),
        ({"provider": "fake", "parameters": {"a": {"b": "c"}}}, "spec.parameters.a: Invalid"),
        ({"provider": "fake", "secretObjects": {"secretName": "x"}}, "spec.secretObjects must be"),
        ({"provider": "fake", "secretObjects": ["x"]}, "spec.secretObjects must be"),
        ({"provider": "fake", "secretObjects": "x"}, "spec.secretObjects must be a list"),
    ],
)
async def test_direct_read_of_a_class_names_the_wrongly_typed_field(
    kube_api: FakeKubeApi, spec: object, field: str
) -> None:
    """A class the cache does not hold yet is read from the API: its fields are checked alike."""
    kube_api.store.put(_class(spec))
    api = KubeApi()
    api.connect(await load_configuration(str(kube_api.kubeconfig_path)))
    try:
        source = KubeSecretProviderClassSource(api)  # informer not started: nothing cached
        with pytest.raises(InvalidSecretProviderClass) as caught:
            await source.get("default", "broken")
    finally:
        await api.close()
    assert caught.value.message.startswith("secretproviderclass default/broken: ")
    assert field in caught.value.message


async def test_the_cache_answers_only_for_usable_classes(kube_api: FakeKubeApi) -> None:
    """``cached`` lets a first publish ask its provider before the mount-point check; a class the
    informer holds as unusable, an invalid name or one it does not hold goes to ``get``, which
    reads or reports it in upstream's order."""
    kube_api.store.put(_class({"provider": "fake", "parameters": {"ttl": 30}}))
    usable = {**_class({"provider": "fake", "parameters": {"a": "b"}})}
    usable["metadata"] = {"name": "app", "namespace": "default"}
    kube_api.store.put(usable)
    api = KubeApi()
    api.connect(await load_configuration(str(kube_api.kubeconfig_path)))
    source = KubeSecretProviderClassSource(api)
    running = asyncio.create_task(source.informer.run())
    try:
        await asyncio.wait_for(source.informer.wait_synced(), 10)
        held = source.cached("default", "app")
        assert held is not None and held.parameters == {"a": "b"}
        assert held is await source.get("default", "app")
        assert source.cached("default", "broken") is None  # unusable: get() says why
        assert source.cached("default", "absent") is None
        assert source.cached("default", "Not_A_Name") is None
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await api.close()
