"""Hostile or garbled pod information in NodePublishVolume, through the real CSI socket (grpcio
client, real tmpfs as root): each is refused with InvalidArgument naming the volume-context key
or manifest field, before the provider is asked, and nothing is written or changed.

Kubelet never sends these (the API server validated the names; the pod UID is the one in the
target path; a pod's volumes never change class), so they come from a hand-made or buggy
caller: the agent must not record a volume it cannot later unpublish, or one attributed to the
wrong pod."""

from __future__ import annotations

import os
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import grpc
import pytest
from structlog.testing import capture_logs

from tests.conftest import SPC_YAML, AgentHarness
from tests.integration.test_hostile_targets import snapshot
from tests.support.kubelet import POD_UID, PodFields, publish_request
from tests.support.mounts import mounts_under

OTHER_UID = "99999999-8888-7777-6666-555555555555"


@pytest.fixture
def logs() -> Iterator[list[MutableMapping[str, Any]]]:
    with capture_logs() as entries:
        yield entries


def statuses(harness: AgentHarness) -> list[str]:
    return sorted(str(p.relative_to(harness.root)) for p in harness.root.glob("spc/status/*/*"))


def assert_nothing_written(harness: AgentHarness, target: str) -> None:
    assert os.listdir(Path(target).parent) == []
    assert mounts_under(str(harness.root)) == []
    assert list(harness.agent.table) == []
    assert statuses(harness) == []


@pytest.mark.parametrize(
    ("key", "change"),
    [
        ("secretProviderClass", {"spc": "other-class"}),
        ("csi.storage.k8s.io/pod.namespace", {"namespace": "team-b"}),
        ("csi.storage.k8s.io/pod.name", {"pod": "web-1"}),
    ],
)
async def test_a_republish_naming_another_pod_or_class_is_refused_and_the_volume_kept(
    harness: AgentHarness, key: str, change: PodFields
) -> None:
    """Before: the republish answered OK and took the volume over in place; for another pod
    the mount table's status index no longer matched, so every later NodeUnpublishVolume failed
    with INTERNAL (KeyError) and the volume and the first pod's status stayed for good."""
    for namespace, name in (("default", "other-class"), ("team-b", "app-secrets")):
        harness.write_spc(name=name, namespace=namespace)
    target = harness.target()
    await harness.kubelet.publish(publish_request(target))
    await harness.statuses_written()
    before, written = snapshot(Path(target)), statuses(harness)

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await harness.kubelet.publish(publish_request(target, **change))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = refused.value.details() or ""
    assert details.startswith(f"{key} in volume context: ")
    assert "differs from the volume already mounted at this target path" in details
    await harness.statuses_written()
    assert snapshot(Path(target)) == before
    assert statuses(harness) == written == ["spc/status/default/web-0-default-app-secrets.yaml"]
    assert len(harness.provider.requests) == 1

    await harness.kubelet.unpublish("csi-0123456789abcdef", target)
    assert_nothing_written(harness, target)


async def test_a_pod_uid_that_is_not_the_target_pod_directory_is_refused(
    harness: AgentHarness, logs: list[MutableMapping[str, Any]]
) -> None:
    """Before: published and recorded for the other pod, whose cleanup would then take this
    volume, and whose status the restart ignores (its target is not under that pod)."""
    target = harness.target(uid=POD_UID)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await harness.kubelet.publish(publish_request(target, uid=OTHER_UID))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details() == (
        f"csi.storage.k8s.io/pod.uid in volume context: '{OTHER_UID}' is not the pod directory "
        f"of the target path ('{POD_UID}'); kubelet sends the same pod UID in both"
    )
    assert harness.provider.requests == []
    assert_nothing_written(harness, target)
    (failed,) = [entry for entry in logs if entry["event"] == "node_publish.failed"]
    assert "fix" not in failed, "podInfoOnMount is not the fix for a wrong value"


async def test_long_pod_uids_that_differ_are_cut_at_80_characters(harness: AgentHarness) -> None:
    """Both UIDs quoted and cut as every other name in a message (agent.documents.names).
    Before: cut at 160 characters, so each side could fill two lines of kubelet's event."""
    in_context, in_path = "a" * 200, "b" * 200  # the path's within NAME_MAX
    target = harness.target(uid=in_path)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await harness.kubelet.publish(publish_request(target, uid=in_context))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details() == (
        f"csi.storage.k8s.io/pod.uid in volume context: '{'a' * 80}'... is not the pod "
        f"directory of the target path ('{'b' * 80}'...); kubelet sends the same pod UID in both"
    )
    assert harness.provider.requests == []
    assert_nothing_written(harness, target)


@pytest.mark.parametrize(
    ("change", "key", "problem"),
    [
        ({"pod": "../../x"}, "pod.name", "'../../x' is not a lowercase RFC 1123 subdomain"),
        ({"pod": "Web_0"}, "pod.name", "'Web_0' is not a lowercase RFC 1123 subdomain"),
        ({"pod": "w" * 254}, "pod.name", "is longer than 253 characters"),
        ({"namespace": "../../etc"}, "pod.namespace", "'../../etc' is not a lowercase RFC 1123"),
        ({"namespace": "team.b"}, "pod.namespace", "'team.b' is not a lowercase RFC 1123 label"),
        ({"namespace": "n" * 64}, "pod.namespace", "is longer than 63 characters"),
    ],
)
async def test_a_pod_name_or_namespace_kubernetes_would_refuse_is_named(
    harness: AgentHarness, change: PodFields, key: str, problem: str
) -> None:
    """Before: a crafted pod name asked the provider, then failed INTERNAL writing the status
    (``invalid pod status name``); a crafted namespace was looked up (and, in Kubernetes mode,
    put in an API path)."""
    target = harness.target()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await harness.kubelet.publish(publish_request(target, **change))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = refused.value.details() or ""
    assert details.startswith(f"csi.storage.k8s.io/{key} in volume context: ")
    assert problem in details
    assert len(details) < 300
    assert harness.provider.requests == []
    assert_nothing_written(harness, target)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("../x", "'../x' is not a lowercase RFC 1123 subdomain"),
        ("Web_SA", "'Web_SA' is not a lowercase RFC 1123 subdomain"),
        ("web..sa", "'web..sa' is not a lowercase RFC 1123 subdomain"),
        ("s" * 254, "is longer than 253 characters"),
        ("web\nforged log line", "'web\\nforged log line' is not a lowercase RFC 1123 subdomain"),
    ],
)
async def test_a_service_account_name_kubernetes_would_refuse_is_named(
    harness: AgentHarness, logs: list[MutableMapping[str, Any]], name: str, problem: str
) -> None:
    """The API server takes only an RFC 1123 subdomain as a pod's ``serviceAccountName``.
    Before: standalone mode passed any name on to the provider, and "serviceaccount ns/name
    not found" echoed it whole (a forged log line, 5000 characters) to kubelet and the log."""
    target = harness.target()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await harness.kubelet.publish(publish_request(target, service_account=name))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = refused.value.details() or ""
    assert details.startswith("csi.storage.k8s.io/serviceAccount.name in volume context: ")
    assert problem in details
    assert len(details) < 300
    (failed,) = [entry for entry in logs if entry["event"] == "node_publish.failed"]
    assert failed["error"] == details
    assert harness.provider.requests == []
    assert_nothing_written(harness, target)


async def test_a_pod_without_a_service_account_name_is_published(harness: AgentHarness) -> None:
    """Kubelet sends the pod's ``spec.serviceAccountName`` as it is: empty when the API
    server's ServiceAccount admission is off. Upstream passes it on unchecked; so does the
    agent (a provider that needs one says so)."""
    await harness.kubelet.publish(publish_request(harness.target(), service_account=""))
    (request,) = harness.provider.requests
    assert request.identity.service_account == ""
    assert request.attributes["csi.storage.k8s.io/serviceAccount.name"] == ""


async def test_a_republish_naming_another_class_quotes_long_names_cut(
    harness: AgentHarness,
) -> None:
    """Names in the refusal are cut at 80 characters, as in every other message. Before: the
    two compared names were cut at 160, and the mounted pod's and class's names not at all."""
    # Valid Kubernetes names, long; the first two make a status name of 209 characters.
    pod, kept, sent = "p" * 100, "c" * 100, "d" * 200
    harness.write_spc(name=kept)
    target = harness.target()
    await harness.kubelet.publish(publish_request(target, pod=pod, spc=kept))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await harness.kubelet.publish(publish_request(target, pod=pod, spc=sent))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    def cut(name: str) -> str:
        return repr(name[:80]) + "..."

    assert refused.value.details() == (
        f"secretProviderClass in volume context: {cut(sent)} differs from the volume already "
        f"mounted at this target path ({cut(kept)}, pod default/{cut(pod)}, class "
        f"{cut(kept)}); unpublish it first"
    )
    assert len(harness.provider.requests) == 1
    await harness.kubelet.unpublish("csi-0123456789abcdef", target)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("../x", "'../x' is not a lowercase RFC 1123 subdomain"),
        ("App_Secrets", "'App_Secrets' is not a lowercase RFC 1123 subdomain"),
    ],
)
async def test_a_class_manifest_named_as_kubernetes_would_refuse_is_named(
    harness: AgentHarness, name: str, problem: str
) -> None:
    """Standalone manifests are those one would ``kubectl apply``, and the API server refuses
    these names. Before: the class was served, the provider asked, and the publish failed
    INTERNAL writing the status (``../x``) or succeeded with a name no cluster could hold."""
    text = SPC_YAML.format(name=name, namespace="default", provider="fake", parameters="    a: b")
    (harness.root / "spc" / "bad.yaml").write_text(text)
    target = harness.target()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await harness.kubelet.publish(publish_request(target, spc=name))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = refused.value.details() or ""
    assert details.startswith(f"secretproviderclass default/{name!r} in bad.yaml: metadata.name: ")
    assert problem in details
    assert harness.provider.requests == []
    assert_nothing_written(harness, target)
    # The other classes of the directory still work.
    await harness.kubelet.publish(publish_request(harness.target("good")))


@pytest.mark.parametrize(
    "name",
    [
        "c" * 200,  # a valid Kubernetes name, long
        "c" * 5000,  # what no API server holds
        "c" * 100 + "\nforged log line",
    ],
)
async def test_an_unknown_class_name_is_quoted_cut(
    harness: AgentHarness, logs: list[MutableMapping[str, Any]], name: str
) -> None:
    """A class name a publish asks for reaches kubelet's error and the log line cut at 80
    characters, quoted, as other names a request brings. Before: echoed whole in NOT_FOUND."""
    shown = repr("c" * 80) + "..."
    target = harness.target()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await harness.kubelet.publish(publish_request(target, spc=name))
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    assert refused.value.details() == (
        f"secretproviderclass default/{shown} not found in {harness.root / 'spc'}"
    )
    (failed,) = [entry for entry in logs if entry["event"] == "node_publish.failed"]
    assert failed["spc"] == shown
    assert failed["error"] == refused.value.details()
    assert_nothing_written(harness, target)


async def test_a_class_manifest_in_a_namespace_kubernetes_would_refuse_is_reported(
    harness: AgentHarness, logs: list[MutableMapping[str, Any]]
) -> None:
    """No pod can be in that namespace (its publish is refused), so the manifest's mistake is
    reported where its owner looks: the agent's warning naming the file and the field."""
    text = SPC_YAML.format(name="app", namespace="Team_B", provider="fake", parameters="    a: b")
    (harness.root / "spc" / "bad.yaml").write_text(text)
    await harness.kubelet.publish(publish_request(harness.target()))
    (warning,) = [entry for entry in logs if entry["event"] == "standalone.spc_invalid"]
    assert warning["file"] == "bad.yaml"
    assert warning["reason"].startswith("metadata.namespace: 'Team_B' is not a lowercase RFC 1123")


def _length_delimited(number: int, data: bytes) -> bytes:
    """One protobuf field of wire type 2 (string, bytes, message), for requests grpcio's own
    serializer would never send."""
    size, varint = len(data), b""
    while size > 0x7F:
        varint += bytes([(size & 0x7F) | 0x80])
        size >>= 7
    return bytes([number << 3 | 2]) + varint + bytes([size]) + data


@pytest.mark.parametrize(
    ("rpc", "body"),
    [
        ("NodePublishVolume", "truncated"),
        ("NodePublishVolume", "target path not UTF-8"),
        ("NodeUnpublishVolume", "target path not UTF-8"),
    ],
)
async def test_a_request_that_is_not_valid_protobuf_is_invalid_argument(
    harness: AgentHarness, caplog: pytest.LogCaptureFixture, rpc: str, body: str
) -> None:
    """Before: grpclib's ``UNKNOWN: Internal Server Error`` and an "Application error"
    traceback in the log (the README promises never UNKNOWN)."""
    target = harness.target()
    if body == "truncated":
        data = bytes(publish_request(target))[:-5]
    else:  # field 1 volume_id, field 2 (unpublish) or 4 (publish) target_path
        path_field = 2 if rpc == "NodeUnpublishVolume" else 4
        data = _length_delimited(1, b"csi-x") + _length_delimited(path_field, b"/var/\xff\xfe")
    call = harness.kubelet.channel.unary_unary(
        f"/csi.v1.Node/{rpc}", request_serializer=bytes, response_deserializer=bytes
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call(data, timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details() == (
        f"request is not a valid {rpc}Request (protobuf decoding failed)"
    )
    assert not [r for r in caplog.records if r.name.startswith("grpclib")]
    assert_nothing_written(harness, target)
