"""Rotation in Kubernetes mode against the fake API over HTTP: upstream's events on the pod,
pod statuses following the versions, refresh-now and interval annotations arriving through
the informers, and the per-pod opt-out. A manual clock: nothing waits for an interval."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from structlog.testing import capture_logs

from agent.errors import ProviderError
from agent.model import (
    FETCH_PER_POD_ANNOTATION,
    REFRESH_NOW_ANNOTATION,
    ROTATION_POLL_INTERVAL_ANNOTATION,
    SecretProviderClass,
)
from tests.fakes.kube_api import secret_provider_class, service_account
from tests.support.clock import ManualClock
from tests.support.kube_agent import SPC, KubeAgents, KubeHarness, eventually

INTERVAL = 120.0
DUE = INTERVAL * 1.11


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def node(agents: KubeAgents, clock: ManualClock) -> KubeHarness:
    return await agents.start(
        clock=clock, enable_secret_rotation=True, rotation_poll_interval=INTERVAL
    )


async def advance(node: KubeHarness, clock: ManualClock, seconds: float) -> None:
    clock.advance(seconds)
    await settle(node)


async def settle(node: KubeHarness) -> None:
    assert node.agent.rotation is not None
    await node.agent.rotation.settle()
    await node.settle()


def rotation_events(node: KubeHarness) -> list[dict[str, Any]]:
    return [e for e in node.events() if str(e["reason"]).startswith("MountRotation")]


async def test_events_follow_upstream_and_only_changes_are_announced(
    node: KubeHarness, clock: ManualClock
) -> None:
    web = await node.add_pod("web-0")
    await node.publish(web)
    await advance(node, clock, DUE)  # same content: nothing to say
    assert node.provider.requests[1:] and rotation_events(node) == []
    node.provider.files["password"] = b"rotated-value"
    await advance(node, clock, DUE)
    await eventually(lambda: len(rotation_events(node)) == 1, "a rotation event")
    (event,) = rotation_events(node)
    assert event["type"] == "Normal"
    assert event["reason"] == "MountRotationComplete"
    assert event["message"] == f"successfully rotated mounted contents for spc default/{SPC}"
    assert event["involvedObject"]["uid"] == web["metadata"]["uid"]
    # The pod status carries the new versions.
    status = node.status(f"web-0-default-{SPC}")
    assert status is not None
    versions = {o["id"]: o["version"] for o in status["status"]["objects"]}
    assert versions == {v.id: v.version for v in node.provider.result().versions}
    # A failure: Warning, with the provider's message and no content.
    node.provider.error = ProviderError("permission denied reading secret/data/app")
    await advance(node, clock, DUE)
    await eventually(lambda: len(rotation_events(node)) == 2, "a failure event")
    failed = [e for e in rotation_events(node) if e["reason"] == "MountRotationFailed"]
    assert failed[0]["type"] == "Warning"
    assert failed[0]["message"] == (
        f"failed to rotate mounted contents for spc default/{SPC} (provider fake): "
        "permission denied reading secret/data/app"
    )
    assert all("rotated-value" not in e["message"] for e in node.events())


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        ({"parameters": {}}, "spec.parameters is not set in secretproviderclass default/"),
        ({"provider": ""}, "spec.provider is not set in secretproviderclass default/"),
    ],
)
async def test_a_class_edited_into_one_publish_refuses_is_refused_by_rotation_too(
    node: KubeHarness, clock: ManualClock, edit: dict[str, Any], named: str
) -> None:
    """A class that lost its provider or parameters between rotations: the provider is not
    asked (publish would refuse it too), the old content stays, and the event names the
    field."""
    web = await node.add_pod("web-0")
    target = await node.publish(web)
    stored = node.add_spc(**edit)["spec"]
    informer = node.cluster.spcs.informer

    def cached() -> bool:
        spc = informer.get("default", SPC)
        return isinstance(spc, SecretProviderClass) and (spc.provider, spc.parameters) == (
            stored["provider"],
            stored["parameters"],
        )

    await eventually(cached, "the edited class in the agent's cache")
    await advance(node, clock, DUE)
    assert len(node.provider.requests) == 1  # only the publish
    await eventually(lambda: len(rotation_events(node)) == 1, "a failure event")
    (event,) = rotation_events(node)
    assert event["reason"] == "MountRotationFailed"
    assert named in event["message"]
    with open(f"{target}/password", "rb") as handle:
        assert handle.read() == b"s3cr3t"


async def test_refresh_now_on_a_pod_rotates_its_volume_at_once(
    node: KubeHarness, clock: ManualClock
) -> None:
    web, api = await node.add_pod("web-0"), await node.add_pod("api-0", service_account="api")
    await node.publish(web)
    await node.publish(api)
    await advance(node, clock, 30)
    node.provider.files["password"] = b"rotated"
    node.kube.store.patch(
        "pods", "default", "web-0", {"metadata": {"annotations": {REFRESH_NOW_ANNOTATION: "1"}}}
    )
    await eventually(lambda: len(node.provider.requests) == 3, "the refresh's fetch")
    await settle(node)
    assert node.provider.requests[-1].identity.name == "web-0"  # only that pod's volume
    # Another edit of the pod (a label) leaves the annotation as it was: no new fetch.
    node.kube.store.patch("pods", "default", "web-0", {"metadata": {"labels": {"x": "y"}}})
    await advance(node, clock, 30)
    assert len(node.provider.requests) == 3


async def test_class_annotations_arrive_through_the_informer(
    node: KubeHarness, clock: ManualClock
) -> None:
    web = await node.add_pod("web-0")
    target = await node.publish(web)
    await advance(node, clock, 15)  # past --rotation-min-poll-interval since the publish
    node.provider.files["password"] = b"rotated"
    annotations = {REFRESH_NOW_ANNOTATION: "2026-11-30T10:00:00Z"}
    node.kube.store.patch(
        "secretproviderclasses", "default", SPC, {"metadata": {"annotations": annotations}}
    )
    await eventually(lambda: len(node.provider.requests) == 2, "the refresh's fetch")
    await settle(node)
    with open(f"{target}/password", "rb") as handle:
        assert handle.read() == b"rotated"
    interval = {ROTATION_POLL_INTERVAL_ANNOTATION: "30s"}
    node.kube.store.patch(
        "secretproviderclasses", "default", SPC, {"metadata": {"annotations": interval}}
    )

    def learned() -> bool:
        rotation, record = node.agent.rotation, node.agent.table.get(target)
        return (
            rotation is not None and record is not None and rotation.schedule.interval(record) == 30
        )

    await eventually(learned, "the class's interval learned")
    await advance(node, clock, 34)
    assert len(node.provider.requests) == 3


async def test_a_class_may_opt_out_of_shared_fetches(
    agents: KubeAgents, node: KubeHarness, clock: ManualClock
) -> None:
    node.kube.store.put(
        {
            **secret_provider_class(
                "per-pod", provider="fake", parameters={"objects": "- objectName: username"}
            ),
            "metadata": {
                "name": "per-pod",
                "namespace": "default",
                "annotations": {FETCH_PER_POD_ANNOTATION: "true"},
            },
        }
    )
    for i in range(3):
        pod = await node.add_pod(f"web-{i}", spc="per-pod")
        await node.publish(pod, spc="per-pod")
    await advance(node, clock, DUE)
    assert len(node.provider.requests) == 6  # three publishes, three rotations


async def test_an_expiring_token_is_replaced_through_token_request(agents: KubeAgents) -> None:
    clock = ManualClock(start=time.time())  # the API server stamps real expiry times
    node = await agents.start(
        clock=clock,
        enable_secret_rotation=True,
        rotation_poll_interval=INTERVAL,
        token_request_fallback=True,
    )
    node.kube.store.put(service_account("web"))
    web = await node.add_pod("web-0", service_account="web")
    # Kubelet's token expires a minute after the next rotation is due: too close to use.
    expires = datetime.fromtimestamp(clock.now() + DUE + 60, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    request = node.request(web, tokens={"vault": "kubelet-jwt"})
    tokens = json.loads(request.volume_context["csi.storage.k8s.io/serviceAccount.tokens"])
    tokens["vault"]["expirationTimestamp"] = expires
    request.volume_context["csi.storage.k8s.io/serviceAccount.tokens"] = json.dumps(tokens)
    await node.kubelet.publish(request)
    await advance(node, clock, DUE)
    (issued,) = node.kube.issuer.issued
    assert (issued.service_account, issued.audiences) == ("web", ("vault",))
    assert (issued.bound_kind, issued.bound_name) == ("Pod", "web-0")
    sent = node.provider.requests[-1]
    assert sent.identity.tokens["vault"].token != "kubelet-jwt"
    assert (
        json.loads(sent.attributes["csi.storage.k8s.io/serviceAccount.tokens"])["vault"]["token"]
        == sent.identity.tokens["vault"].token
    )
    # The minted token is kept: the next rotation needs no other.
    await advance(node, clock, DUE)
    assert len(node.kube.issuer.issued) == 1


async def test_an_invalid_interval_annotation_is_reported_once_per_class_version(
    node: KubeHarness, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not on every planning pass: one Warning per pod that uses the class, one log line,
    again only when the annotation's value (or the class) changes."""
    recorder, queued = node.cluster.events, []
    record_warning = recorder.warning

    def warning(pod: Any, reason: str, message: str) -> None:
        queued.append((pod.name, reason))
        record_warning(pod, reason, message)

    monkeypatch.setattr(recorder, "warning", warning)
    await set_interval_annotation(node, "soon")
    web, api = await node.add_pod("web-0"), await node.add_pod("api-0", service_account="api")
    with capture_logs() as logs:
        await node.publish(web)
        await node.publish(api)
        for _ in range(4):  # four rotations at the flag's interval, and passes between
            await advance(node, clock, DUE / 2)
            await advance(node, clock, DUE / 2)
        await eventually(lambda: len(interval_events(node)) == 2, "one event per pod")
    assert len(node.provider.requests) > 4  # rotation went on at --rotation-poll-interval
    assert sorted(queued) == [("api-0", INVALID_INTERVAL), ("web-0", INVALID_INTERVAL)]
    assert {e["involvedObject"]["name"] for e in interval_events(node)} == {"web-0", "api-0"}
    for event in interval_events(node):
        assert event["type"] == "Warning"
        assert event["message"] == (
            f"ignoring annotation {ROTATION_POLL_INTERVAL_ANNOTATION} on secretproviderclass "
            f"default/{SPC}: invalid duration 'soon' (examples: 90s, 2m, 1h30m); "
            f"using --rotation-poll-interval ({INTERVAL:g}s)"
        )
    assert [e["event"] for e in logs].count("rotation.interval_invalid") == 1
    # Another bad value is a new report; a pass after it says nothing more.
    await set_interval_annotation(node, "5 minutes")
    await advance(node, clock, DUE)
    await eventually(lambda: len(interval_events(node)) == 4, "the new value reported")
    await advance(node, clock, DUE)
    assert len(queued) == 4


INVALID_INTERVAL = "InvalidRotationPollInterval"


async def set_interval_annotation(node: KubeHarness, value: str) -> None:
    annotations = {ROTATION_POLL_INTERVAL_ANNOTATION: value}
    node.kube.store.patch(
        "secretproviderclasses", "default", SPC, {"metadata": {"annotations": annotations}}
    )
    informer = node.cluster.spcs.informer

    def cached() -> bool:
        spc = informer.get("default", SPC)
        return isinstance(spc, SecretProviderClass) and spc.annotations == annotations

    await eventually(cached, "the annotated class in the agent's cache")


def interval_events(node: KubeHarness) -> list[dict[str, Any]]:
    return [e for e in node.events() if e["reason"] == INVALID_INTERVAL]
