"""Events on pods as the API stores them: messages that say which class and provider failed,
names the API accepts for any valid pod name."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest

from agent.errors import ProviderError
from agent.k8s.api import KubeApi
from agent.k8s.connection import load_configuration
from agent.k8s.events import EventSettings, KubeEventRecorder, event_name
from agent.model import PodIdentity
from tests.fakes.kube_api import FakeKubeApi
from tests.support.kube_agent import SPC, KubeHarness, eventually


@pytest.fixture
async def recorder(kube_api: FakeKubeApi) -> AsyncIterator[KubeEventRecorder]:
    api = KubeApi()
    api.connect(await load_configuration(str(kube_api.kubeconfig_path)))
    recorder = KubeEventRecorder(api, "node-a", EventSettings(min_interval=0.0))
    task = asyncio.create_task(recorder.run())
    try:
        yield recorder
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await api.close()


async def test_event_on_a_pod_with_a_name_near_the_limit_is_recorded(
    kube_api: FakeKubeApi, recorder: KubeEventRecorder
) -> None:
    name = "web-" + "a" * 245  # 249 characters: a valid pod name, too long for "<name>.<hex>"
    recorder.warning(PodIdentity("default", name, "uid-1"), "FailedToMount", "no such class")
    await eventually(lambda: len(kube_api.store.list("events")) == 1, "the event stored")
    event = kube_api.store.list("events")[0]
    assert event["involvedObject"]["name"] == name
    assert len(event["metadata"]["name"]) <= 253


def test_event_names_follow_client_go() -> None:
    assert event_name("web-0", 0x1234ABCD) == "web-0.1234abcd"
    assert event_name("a" * 236, 1 << 63) == "a" * 236 + ".8000000000000000"  # 253 exactly
    fallback = event_name("a" * 237, 1 << 63)
    assert str(uuid.UUID(fallback)) == fallback  # too long: a UUID, as client-go


async def test_provider_error_event_names_the_class_and_the_provider(node: KubeHarness) -> None:
    node.provider.error = ProviderError("vaultAddress: no server address")
    web = await node.add_pod("web-0")
    with pytest.raises(grpc.aio.AioRpcError):
        await node.publish(web)
    event = await node.event("GRPCProviderError")
    assert event["message"] == (
        f"failed to mount spc default/{SPC} (provider fake): vaultAddress: no server address"
    )


async def test_an_error_that_names_the_class_is_not_prefixed_twice(node: KubeHarness) -> None:
    web = await node.add_pod("web-0", spc="missing")
    with pytest.raises(grpc.aio.AioRpcError):
        await node.publish(web, spc="missing")
    event = await node.event("SecretProviderClassNotFound")
    assert event["message"] == (
        "failed to mount the volume: failed to get secretproviderclass default/missing: "
        "not found in namespace default"
    )


@pytest.mark.parametrize(
    ("name", "reason", "error"),
    [
        # A valid name the API has no class of: read from the API, NOT_FOUND.
        (
            "c" * 200,
            "SecretProviderClassNotFound",
            "failed to get secretproviderclass default/{shown}: not found in namespace default",
        ),
        # No object can have this name: refused before the API is asked.
        (
            "c" * 5000,
            "FailedToMount",
            "secretProviderClass {shown} is longer than 253 characters (a Kubernetes name)",
        ),
    ],
)
async def test_an_unknown_class_name_is_quoted_cut_in_the_error_and_the_event(
    node: KubeHarness, name: str, reason: str, error: str
) -> None:
    """Before: the requested name was echoed whole, in kubelet's error and the pod's event
    (twice in the event for an invalid name: the error did not name ``namespace/name``)."""
    shown = repr("c" * 80) + "..."
    web = await node.add_pod("web-0", spc=name)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await node.publish(web, spc=name)
    assert refused.value.details() == error.format(shown=shown)
    event = await node.event(reason)
    subject = "the volume" if "/" in error else f"spc default/{shown}"
    assert event["message"] == f"failed to mount {subject}: {error.format(shown=shown)}"


@pytest.mark.parametrize(
    ("reason", "component"),
    [
        # Upstream §12.2: the sync controller's recorder.
        ("FailedToCreateSecret", "csi-secrets-store-controller"),
        # Upstream ≤v1.5 §8.2: the rotation reconciler's recorder.
        ("MountRotationComplete", "csi-secrets-store-rotation"),
        ("MountRotationFailed", "csi-secrets-store-rotation"),
        ("SecretRotationComplete", "csi-secrets-store-rotation"),
        ("SecretRotationFailed", "csi-secrets-store-rotation"),
        # The agent's own (upstream leaves a failed mount to kubelet's FailedMount).
        ("SecretProviderClassNotFound", "secrets-store-agent"),
    ],
)
async def test_events_upstream_records_come_from_upstreams_component(
    kube_api: FakeKubeApi, recorder: KubeEventRecorder, reason: str, component: str
) -> None:
    """Event routing and ``kubectl get events --field-selector source=...`` written for the
    upstream driver keep finding its events."""
    recorder.normal(PodIdentity("default", "web-0", "uid-1"), reason, "what happened")
    await eventually(lambda: len(kube_api.store.list("events")) == 1, "the event stored")
    event = kube_api.store.list("events")[0]
    assert event["source"]["component"] == component
    assert event["reportingComponent"] == component
    assert event["reportingInstance"] == "node-a"
