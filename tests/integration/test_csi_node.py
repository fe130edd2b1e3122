"""The agent's CSI socket driven by a grpcio client, as kubelet drives it."""

from __future__ import annotations

import asyncio
import io
import json
import os
import stat
from collections.abc import Awaitable
from pathlib import Path

import aiohttp
import betterproto2
import grpc
import pytest
import yaml

from agent._proto.csi import v1 as csi
from agent.errors import ProviderError
from tests.conftest import AgentHarness
from tests.support.kubelet import publish_request
from tests.support.mounts import is_root, mounts_under


async def expect_error(call: Awaitable[object], code: grpc.StatusCode) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == code, info.value.details()
    return info.value.details() or ""


def visible_names(target: str) -> list[str]:
    return sorted(name for name in os.listdir(target) if not name.startswith(".."))


# ---- Identity and Controller ----


async def test_identity_answers_like_upstream(harness: AgentHarness) -> None:
    info = await harness.kubelet.call(
        "Identity", "GetPluginInfo", csi.GetPluginInfoRequest(), csi.GetPluginInfoResponse
    )
    assert info.name == "secrets-store.csi.k8s.io"
    assert info.vendor_version
    caps = await harness.kubelet.call(
        "Identity",
        "GetPluginCapabilities",
        csi.GetPluginCapabilitiesRequest(),
        csi.GetPluginCapabilitiesResponse,
    )
    assert [c.service.type if c.service is not None else None for c in caps.capabilities] == [
        csi.PluginCapabilityServiceType.CONTROLLER_SERVICE
    ]
    probe = await harness.kubelet.call("Identity", "Probe", csi.ProbeRequest(), csi.ProbeResponse)
    assert probe.ready is True


@pytest.mark.parametrize("settings_overrides", [{"driver_name": ""}])
async def test_plugin_info_without_a_driver_name_is_unavailable(harness: AgentHarness) -> None:
    """As upstream's GetPluginInfo: no name (``--drivername=``) is UNAVAILABLE, which
    node-driver-registrar reports instead of registering a nameless driver."""
    details = await expect_error(
        harness.kubelet.call(
            "Identity", "GetPluginInfo", csi.GetPluginInfoRequest(), csi.GetPluginInfoResponse
        ),
        grpc.StatusCode.UNAVAILABLE,
    )
    assert "driver name" in details


async def test_node_info_and_capabilities(harness: AgentHarness) -> None:
    info = await harness.kubelet.call(
        "Node", "NodeGetInfo", csi.NodeGetInfoRequest(), csi.NodeGetInfoResponse
    )
    assert info.node_id == "node-a"
    caps = await harness.kubelet.call(
        "Node",
        "NodeGetCapabilities",
        csi.NodeGetCapabilitiesRequest(),
        csi.NodeGetCapabilitiesResponse,
    )
    assert [c.rpc.type if c.rpc is not None else None for c in caps.capabilities] == [
        csi.NodeServiceCapabilityRpcType.STAGE_UNSTAGE_VOLUME,
        csi.NodeServiceCapabilityRpcType.VOLUME_MOUNT_GROUP,  # kubelet then sends fsGroup
    ]


async def test_controller_is_a_stub(harness: AgentHarness) -> None:
    caps = await harness.kubelet.call(
        "Controller",
        "ControllerGetCapabilities",
        csi.ControllerGetCapabilitiesRequest(),
        csi.ControllerGetCapabilitiesResponse,
    )
    assert [c.rpc.type if c.rpc is not None else None for c in caps.capabilities] == [
        csi.ControllerServiceCapabilityRpcType.UNKNOWN
    ]
    call = harness.kubelet.call(
        "Controller", "CreateVolume", csi.CreateVolumeRequest(name="x"), csi.CreateVolumeResponse
    )
    await expect_error(call, grpc.StatusCode.UNIMPLEMENTED)


@pytest.mark.parametrize(
    ("rpc", "request_", "response"),
    [
        (
            "NodeGetVolumeStats",
            csi.NodeGetVolumeStatsRequest(volume_id="v", volume_path="/x"),
            csi.NodeGetVolumeStatsResponse,
        ),
        (
            "NodeExpandVolume",
            csi.NodeExpandVolumeRequest(volume_id="v"),
            csi.NodeExpandVolumeResponse,
        ),
    ],
)
async def test_unsupported_node_rpcs_are_unimplemented(
    harness: AgentHarness,
    rpc: str,
    request_: betterproto2.Message,
    response: type[betterproto2.Message],
) -> None:
    await expect_error(
        harness.kubelet.call("Node", rpc, request_, response), grpc.StatusCode.UNIMPLEMENTED
    )


async def test_stage_and_unstage_are_validated_noops(harness: AgentHarness) -> None:
    capability = csi.VolumeCapability(mount=csi.VolumeCapabilityMountVolume())
    ok = csi.NodeStageVolumeRequest(
        volume_id="v", staging_target_path="/s", volume_capability=capability
    )
    await harness.kubelet.call("Node", "NodeStageVolume", ok, csi.NodeStageVolumeResponse)
    bad = csi.NodeStageVolumeRequest(volume_id="v", volume_capability=capability)
    details = await expect_error(
        harness.kubelet.call("Node", "NodeStageVolume", bad, csi.NodeStageVolumeResponse),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "Staging target path" in details
    unstage = csi.NodeUnstageVolumeRequest(staging_target_path="/s")
    await expect_error(
        harness.kubelet.call("Node", "NodeUnstageVolume", unstage, csi.NodeUnstageVolumeResponse),
        grpc.StatusCode.INVALID_ARGUMENT,
    )


# ---- Publish ----


async def test_publish_writes_files_atomically_with_modes(harness: AgentHarness) -> None:
    harness.provider.files = {"username": b"admin", "password": b"s3cr3t", "nested/ca.crt": b"CERT"}
    harness.provider.modes = {"password": 0o600}
    target = harness.target()
    await harness.kubelet.publish(publish_request(target, tokens={"vault": "jwt-token"}))

    assert visible_names(target) == ["nested", "password", "username"]
    assert Path(target, "username").read_bytes() == b"admin"
    assert Path(target, "nested/ca.crt").read_bytes() == b"CERT"
    assert stat.S_IMODE(os.stat(Path(target, "password")).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(Path(target, "username")).st_mode) == 0o644
    assert os.path.islink(Path(target, "..data"))
    if is_root():
        assert mounts_under(target) == [target]
    request = harness.provider.requests[-1]
    assert request.attributes["objects"] == "- objectName: username\n"
    assert request.identity.token_for("vault") is not None
    assert "csi.storage.k8s.io/serviceAccount.tokens" in request.attributes


async def test_publish_records_pod_status(harness: AgentHarness) -> None:
    target = harness.target()
    await harness.kubelet.publish(publish_request(target))
    await harness.statuses_written()  # behind the reply
    status_files = list((harness.root / "spc" / "status").rglob("*.yaml"))
    assert len(status_files) == 1
    document = yaml.safe_load(status_files[0].read_text())
    assert document["metadata"]["name"] == "web-0-default-app-secrets"
    assert document["metadata"]["labels"]["internal.secrets-store.csi.k8s.io/node-name"] == "node-a"
    assert document["status"]["mounted"] is True
    assert document["status"]["targetPath"] == target
    assert {o["id"] for o in document["status"]["objects"]} == {"username", "password"}


async def test_volume_attributes_override_spc_parameters(harness: AgentHarness) -> None:
    harness.write_spc(parameters={"objects": "- a", "region": "eu"})
    await harness.kubelet.publish(publish_request(harness.target(), extra={"region": "us"}))
    assert harness.provider.requests[-1].attributes["region"] == "us"


async def test_republish_is_idempotent_and_refreshes_tokens(harness: AgentHarness) -> None:
    target = harness.target()
    await harness.kubelet.publish(publish_request(target, tokens={"vault": "first"}))
    await harness.kubelet.publish(publish_request(target, tokens={"vault": "second"}))
    assert len(harness.provider.requests) == 1
    record = harness.agent.table.get(target)
    assert record is not None
    token = record.pod.token_for("vault")
    assert token is not None and token.token == "second"


async def test_the_capabilitys_fs_type_mount_flags_and_access_mode_are_ignored(
    harness: AgentHarness,
) -> None:
    """As upstream (§3.5 step 14): the volume is a tmpfs whatever ``csi.fsType`` or mount
    flags the pod asks for; only a missing capability is refused."""
    target = harness.target()
    request = publish_request(target)
    request.volume_capability = csi.VolumeCapability(
        mount=csi.VolumeCapabilityMountVolume(fs_type="ext4", mount_flags=["rw", "exec"]),
        access_mode=csi.VolumeCapabilityAccessMode(
            mode=csi.VolumeCapabilityAccessModeMode.MULTI_NODE_MULTI_WRITER
        ),
    )
    await harness.kubelet.publish(request)
    assert visible_names(target) == ["password", "username"]
    if is_root():
        assert mounts_under(target) == [target]


async def test_socket_mode_is_0660_or_stricter(harness: AgentHarness) -> None:
    mode = stat.S_IMODE(os.stat(harness.socket).st_mode)
    assert mode & 0o007 == 0 and mode & 0o660 == mode


# ---- Validation, in upstream's order ----


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"with_capability": False, "volume_id": ""}, "Volume capability missing in request"),
        ({"volume_id": ""}, "Volume ID missing in request"),
        ({"volume_id": "", "target_path": ""}, "Volume ID missing in request"),
        ({"target_path": ""}, "Target path missing in request"),
        ({"readonly": False}, "Readonly is not true in request"),
    ],
)
async def test_invalid_requests(
    harness: AgentHarness, changes: dict[str, object], message: str
) -> None:
    target = str(changes.pop("target_path", harness.target()))
    request = publish_request(target, **changes)  # type: ignore[arg-type]
    details = await expect_error(harness.kubelet.publish(request), grpc.StatusCode.INVALID_ARGUMENT)
    assert message in details
    assert harness.provider.requests == []
    assert not os.path.exists(harness.target()) or not os.listdir(harness.target())


async def test_empty_volume_context_is_rejected(harness: AgentHarness) -> None:
    request = publish_request(harness.target())
    request.volume_context = {}
    details = await expect_error(harness.kubelet.publish(request), grpc.StatusCode.INVALID_ARGUMENT)
    assert "Volume attributes missing" in details


async def test_missing_pod_info_names_the_key(harness: AgentHarness) -> None:
    request = publish_request(harness.target())
    del request.volume_context["csi.storage.k8s.io/pod.namespace"]
    details = await expect_error(harness.kubelet.publish(request), grpc.StatusCode.INVALID_ARGUMENT)
    assert "csi.storage.k8s.io/pod.namespace" in details


async def test_missing_secret_provider_class_attribute(harness: AgentHarness) -> None:
    request = publish_request(harness.target())
    del request.volume_context["secretProviderClass"]
    details = await expect_error(harness.kubelet.publish(request), grpc.StatusCode.INVALID_ARGUMENT)
    assert "secretProviderClass" in details


async def test_unknown_secret_provider_class(harness: AgentHarness) -> None:
    details = await expect_error(
        harness.kubelet.publish(publish_request(harness.target(), spc="nope")),
        grpc.StatusCode.NOT_FOUND,
    )
    assert "default/nope" in details


async def test_spc_must_be_in_the_pods_namespace(harness: AgentHarness) -> None:
    harness.write_spc(name="other-ns", namespace="kube-system")
    request = publish_request(harness.target(), spc="other-ns")
    await expect_error(harness.kubelet.publish(request), grpc.StatusCode.NOT_FOUND)


async def test_unknown_provider_lists_available(harness: AgentHarness) -> None:
    harness.write_spc(provider="nosuch")
    details = await expect_error(
        harness.kubelet.publish(publish_request(harness.target())),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert "'nosuch'" in details and "fake" in details


async def test_spc_without_parameters_is_rejected(harness: AgentHarness) -> None:
    harness.write_spc(parameters={})
    details = await expect_error(
        harness.kubelet.publish(publish_request(harness.target())), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert "spec.parameters" in details


async def test_spc_without_a_provider_is_rejected(harness: AgentHarness) -> None:
    harness.write_spc(provider='""')
    details = await expect_error(
        harness.kubelet.publish(publish_request(harness.target())), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert "spec.provider is not set in secretproviderclass default/app-secrets" in details
    assert mounts_under(harness.target()) == []


async def test_malformed_token_json_is_rejected_without_echoing_it(harness: AgentHarness) -> None:
    request = publish_request(harness.target())
    request.volume_context["csi.storage.k8s.io/serviceAccount.tokens"] = '{"vault": "eyJhbGciOi'
    details = await expect_error(harness.kubelet.publish(request), grpc.StatusCode.INVALID_ARGUMENT)
    assert "serviceAccount.tokens" in details and "eyJ" not in details


# ---- Failures leave nothing behind ----


async def test_failed_first_publish_unmounts_and_leaves_nothing(harness: AgentHarness) -> None:
    harness.provider.error = ProviderError(
        "permission denied reading secret/data/app with role web"
    )
    target = harness.target()
    details = await expect_error(
        harness.kubelet.publish(publish_request(target)), grpc.StatusCode.FAILED_PRECONDITION
    )
    assert "permission denied" in details
    assert mounts_under(target) == []
    assert not os.path.exists(target) or os.listdir(target) == []
    assert harness.agent.table.get(target) is None
    assert not list((harness.root / "spc").glob("status/**/*.yaml"))


@pytest.mark.parametrize(
    "bad_path", ["../escape", "/etc/passwd", "..data/x", "a/../../b", "ok//double"]
)
async def test_provider_paths_are_validated(harness: AgentHarness, bad_path: str) -> None:
    harness.provider.files = {"fine": b"1", bad_path: b"2"}
    target = harness.target()
    details = await expect_error(
        harness.kubelet.publish(publish_request(target)), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert bad_path in details
    assert mounts_under(target) == []
    assert not (harness.root / "etc").exists()
    assert not os.path.exists(target) or os.listdir(target) == []


async def test_unexpected_provider_exception_is_internal_not_unknown(harness: AgentHarness) -> None:
    harness.provider.error = RuntimeError("leaky detail s3cr3t")
    details = await expect_error(
        harness.kubelet.publish(publish_request(harness.target())), grpc.StatusCode.INTERNAL
    )
    assert "RuntimeError" in details and "s3cr3t" not in details


@pytest.mark.parametrize("settings_overrides", [{"provider_timeout": 0.2}])
async def test_provider_deadline(harness: AgentHarness) -> None:
    harness.provider.gate = asyncio.Event()
    target = harness.target()
    details = await expect_error(
        harness.kubelet.publish(publish_request(target)), grpc.StatusCode.DEADLINE_EXCEEDED
    )
    assert "0.2s" in details and "--provider-timeout" in details
    assert mounts_under(target) == []


# ---- Unpublish ----


async def test_unpublish_removes_everything(harness: AgentHarness) -> None:
    target = harness.target()
    await harness.kubelet.publish(publish_request(target))
    await harness.kubelet.unpublish("csi-0123456789abcdef", target)
    assert mounts_under(target) == []
    assert not os.path.exists(target)
    assert harness.agent.table.get(target) is None
    assert not list((harness.root / "spc").glob("status/**/*.yaml"))


async def test_unpublish_of_unknown_path_succeeds(harness: AgentHarness) -> None:
    await harness.kubelet.unpublish("csi-x", harness.target("never-mounted"))


async def test_unpublish_validates(harness: AgentHarness) -> None:
    await expect_error(
        harness.kubelet.unpublish("", harness.target()), grpc.StatusCode.INVALID_ARGUMENT
    )
    await expect_error(harness.kubelet.unpublish("v", ""), grpc.StatusCode.INVALID_ARGUMENT)


# ---- Concurrency ----


async def test_publish_and_unpublish_of_one_target_are_serialized(harness: AgentHarness) -> None:
    harness.provider.gate = asyncio.Event()
    target = harness.target()
    publishing = asyncio.ensure_future(harness.kubelet.publish(publish_request(target)))
    while harness.provider.in_flight == 0:
        await asyncio.sleep(0.01)
    unpublishing = asyncio.ensure_future(harness.kubelet.unpublish("csi-1", target))
    await asyncio.sleep(0.1)
    assert not unpublishing.done(), "unpublish ran while publish of the same target was in flight"
    harness.provider.gate.set()
    await publishing
    await unpublishing
    assert mounts_under(target) == [] and not os.path.exists(target)


async def test_different_targets_publish_concurrently(harness: AgentHarness) -> None:
    harness.provider.gate = asyncio.Event()
    targets = [harness.target(f"vol-{i}") for i in range(3)]
    calls = [asyncio.ensure_future(harness.kubelet.publish(publish_request(t))) for t in targets]
    async with asyncio.timeout(10):
        while harness.provider.in_flight < 3:
            await asyncio.sleep(0.01)
    harness.provider.gate.set()
    await asyncio.gather(*calls)
    for target in targets:
        await harness.kubelet.unpublish("csi-1", target)


# Rotation (the scheduler, and kubelet's republish with rotation on): test_rotation.py.


# ---- Shutdown and metrics ----


async def test_stop_lets_in_flight_publish_finish_and_refuses_new_calls(
    harness: AgentHarness,
) -> None:
    harness.provider.gate = asyncio.Event()
    target = harness.target()
    publishing = asyncio.ensure_future(harness.kubelet.publish(publish_request(target)))
    while harness.provider.in_flight == 0:
        await asyncio.sleep(0.01)
    health_port = harness.agent.web.bound_ports["health"]
    stopping = asyncio.ensure_future(harness.agent.csi.stop(grace=5))
    await asyncio.sleep(0.05)
    url = f"http://127.0.0.1:{health_port}/readyz"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 503  # draining: not ready for new volumes
    refused = await expect_error(
        harness.kubelet.publish(publish_request(harness.target("late"))),
        grpc.StatusCode.UNAVAILABLE,
    )
    assert "shutting down" in refused
    harness.provider.gate.set()
    await publishing
    await stopping
    assert Path(target, "username").read_bytes() == b"admin"
    health = f"http://127.0.0.1:{health_port}/healthz"
    async with aiohttp.ClientSession() as session, session.get(health) as response:
        assert response.status == 503
        assert "[-]csi-socket failed" in await response.text()
    # The socket is gone now; clean up as kubelet would after the agent restarts.
    await harness.agent.mounter.unmount(target)
    harness.agent.table.forget(target)


async def test_metrics_count_publishes_with_upstream_names(harness: AgentHarness) -> None:
    await harness.kubelet.publish(publish_request(harness.target()))
    await expect_error(
        harness.kubelet.publish(publish_request(harness.target("b"), spc="nope")),
        grpc.StatusCode.NOT_FOUND,
    )
    body = harness.agent.metrics.exposition()[0].decode()
    assert 'node_publish_total{os_type="linux",provider="fake"} 1.0' in body
    assert 'error_type="SecretProviderClassNotFound"' in body
    await harness.kubelet.unpublish("v", harness.target())
    assert (
        'node_unpublish_total{os_type="linux"} 1.0'
        in harness.agent.metrics.exposition()[0].decode()
    )


async def test_a_republish_of_a_mounted_volume_counts_as_a_publish(harness: AgentHarness) -> None:
    """Upstream counts every successful return in node_publish_total, the idempotent republish
    of a mounted volume (kubelet's requiresRepublish calls) included."""
    target = harness.target()
    for _ in range(3):
        await harness.kubelet.publish(publish_request(target))
    assert len(harness.provider.requests) == 1
    body = harness.agent.metrics.exposition()[0].decode()
    assert 'node_publish_total{os_type="linux",provider="fake"} 3.0' in body
    assert "node_publish_error_total{" not in body


async def test_failed_metadata_write_leaves_no_status_and_no_mount(
    harness: AgentHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.errors import FileWriteError

    def failing_save(target: str, document: object) -> None:
        raise FileWriteError(f"failed to save volume metadata in {target}: No space left on device")

    # Publish saves in the worker thread that writes the files (its blocking form).
    monkeypatch.setattr(harness.agent.metadata, "save_blocking", failing_save)
    target = harness.target()
    details = await expect_error(
        harness.kubelet.publish(publish_request(target)), grpc.StatusCode.INTERNAL
    )
    assert "No space left" in details
    assert mounts_under(target) == []
    assert not list((harness.root / "spc").glob("status/**/*.yaml"))


async def test_provider_returning_versions_but_no_files_writes_nothing(
    harness: AgentHarness,
) -> None:
    """Legacy plugins write into target_path themselves (upstream #551): leave their files."""
    target = harness.target()

    def write_like_a_legacy_plugin(request: object) -> None:
        Path(target, "legacy.txt").write_text("written by the plugin")

    harness.provider.on_mount = write_like_a_legacy_plugin
    harness.provider.files = {}
    original = harness.provider.result

    def versions_only(default_mode: int = 0o644) -> object:
        from agent.model import MountResult, ObjectVersion

        return MountResult((), (ObjectVersion("secret/legacy", "1"),))

    harness.provider.result = versions_only  # type: ignore[method-assign,assignment]
    await harness.kubelet.publish(publish_request(target))
    assert Path(target, "legacy.txt").read_text() == "written by the plugin"
    harness.provider.result = original  # type: ignore[method-assign]


async def test_restarted_agent_rebuilds_its_mount_table(harness: AgentHarness) -> None:
    from agent.app import build_agent
    from agent.providers.registry import ProviderRegistry

    target = harness.target()
    await harness.kubelet.publish(publish_request(target, tokens={"vault": "jwt"}))
    await harness.agent.stop()  # the agent restarts; kubelet keeps the volume mounted
    harness.agent.table.forget(target)

    registry = ProviderRegistry(
        timeout=5, version_key=b"k", factories={"fake": lambda _c: harness.provider}
    )
    restarted = build_agent(harness.settings, registry=registry)
    await restarted.start()
    try:
        record = restarted.table.get(target)
        assert record is not None
        assert (record.pod.name, record.spc_name, record.provider) == (
            "web-0",
            "app-secrets",
            "fake",
        )
        assert {v.id for v in record.versions} == {"username", "password"}
        assert (
            record.pod.tokens == {}
        )  # tokens are never persisted; kubelet's republish brings them
        await harness.kubelet.publish(publish_request(target, tokens={"vault": "fresh"}))
        assert len(harness.provider.requests) == 1  # republish of a known volume: no refetch
        token = record.pod.token_for("vault")
        assert token is not None and token.token == "fresh"
        await harness.kubelet.unpublish("v", target)
        assert mounts_under(target) == []
    finally:
        await restarted.stop()


@pytest.mark.parametrize(
    "target",
    [
        "relative/mount",
        "C:/drive/on/linux",
        "/var/lib/kubelet/pods/u/../../../../etc/mount",
        "/var/lib/kubelet//pods/u/mount",
        "/var/lib/kubelet/pods/u/mount/",
        "/x/\0/mount",
    ],
)
async def test_unclean_target_paths_are_refused(harness: AgentHarness, target: str) -> None:
    for call in (
        harness.kubelet.publish(publish_request(target)),
        harness.kubelet.unpublish("v", target),
    ):
        details = await expect_error(call, grpc.StatusCode.INVALID_ARGUMENT)
        assert "Target path must" in details
    assert harness.provider.requests == []


@pytest.mark.parametrize("settings_overrides", [{"max_payload_bytes": 1024}])
async def test_oversized_content_is_refused_and_nothing_written(harness: AgentHarness) -> None:
    harness.provider.files = {"small": b"x" * 100, "big": b"y" * 2000}
    target = harness.target()
    details = await expect_error(
        harness.kubelet.publish(publish_request(target)), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert "big" in details and "1024" in details and "--max-payload-size" in details
    assert "yyyy" not in details
    assert mounts_under(target) == [] and not os.path.exists(target)


@pytest.mark.parametrize("mode", [0o4755, -1, 0o10000])
async def test_bad_file_modes_are_refused(harness: AgentHarness, mode: int) -> None:
    harness.provider.files = {"setuid-please": b"x"}
    harness.provider.modes = {"setuid-please": mode}
    target = harness.target()
    details = await expect_error(
        harness.kubelet.publish(publish_request(target)), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert "setuid-please" in details
    assert mounts_under(target) == []


async def test_node_publish_secret_quoted_by_a_provider_is_scrubbed(
    harness: AgentHarness,
) -> None:
    from agent.logs import configure_logging

    lines = io.StringIO()
    configure_logging(json=True, verbosity=0, stream=lines)
    secret = "np-secret-Zq81vX"
    harness.provider.error = ProviderError(f"login failed for client secret {secret}")
    request = publish_request(harness.target(), secrets={"clientsecret": secret})
    details = await expect_error(
        harness.kubelet.publish(request), grpc.StatusCode.FAILED_PRECONDITION
    )
    assert "login failed" in details and secret not in details
    assert "[REDACTED]" in details
    assert "node_publish.failed" in lines.getvalue()
    assert secret not in lines.getvalue()


async def test_a_service_account_token_quoted_back_cut_short_is_scrubbed(
    harness: AgentHarness,
) -> None:
    """The JWT-shape pattern needs the header; a quote that lost it (payload and signature
    only) is caught because the pod's tokens are registered for the call, segments too."""
    from agent.logs import configure_logging

    lines = io.StringIO()
    configure_logging(json=True, verbosity=0, stream=lines)
    header, payload, signature = (
        "eyJhbGciOiJSUzI1NiJ9",
        "eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVmYXVsdDp3ZWIifQ",
        "c2lnbmF0dXJlLW9mLXRoZS10b2tlbi0xMjM0NTY3ODkw",
    )
    quoted = f"{payload}.{signature}"
    harness.provider.error = ProviderError(f"login refused: bad token ...{quoted}")
    request = publish_request(harness.target(), tokens={"vault": f"{header}.{quoted}"})
    details = await expect_error(
        harness.kubelet.publish(request), grpc.StatusCode.FAILED_PRECONDITION
    )
    assert details.startswith("login refused: bad token ...[REDACTED]")
    for part in (payload, signature):
        assert part not in details and part not in lines.getvalue()
    assert "node_publish.failed" in lines.getvalue()


@pytest.mark.parametrize("settings_overrides", [{"verbosity": 1}])
async def test_verbose_agent_traces_each_request(harness: AgentHarness) -> None:
    from agent.logs import configure_logging

    lines = io.StringIO()
    configure_logging(json=True, verbosity=1, stream=lines)
    await harness.kubelet.call("Identity", "Probe", csi.ProbeRequest(), csi.ProbeResponse)
    traced = [json.loads(line) for line in lines.getvalue().splitlines()]
    assert any(
        e["event"] == "csi.request" and e["method"] == "/csi.v1.Identity/Probe" for e in traced
    )


async def test_a_leftover_empty_mount_is_filled_not_trusted(harness: AgentHarness) -> None:
    """An agent killed between mount and write leaves an empty tmpfs; the retry must fill it."""
    target = harness.target()
    await harness.agent.mounter.mount(target)  # the leftover: mounted, empty, unknown
    await harness.kubelet.publish(publish_request(target))
    assert visible_names(target) == ["password", "username"]
    assert len(harness.provider.requests) == 1


async def test_kubelet_deadline_during_a_slow_write_leaves_nothing_on_the_node(
    harness: AgentHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from agent.fs.atomic_writer import AtomicWriter

    real_write = AtomicWriter.write

    def slow_write(self: AtomicWriter, *args: object, **kwargs: object) -> bool:
        time.sleep(0.4)  # in the worker thread, after kubelet has given up
        return real_write(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(AtomicWriter, "write", slow_write)
    target = harness.target()
    call = harness.kubelet.channel.unary_unary(
        "/csi.v1.Node/NodePublishVolume",
        request_serializer=bytes,
        response_deserializer=csi.NodePublishVolumeResponse.parse,
    )
    await expect_error(
        call(publish_request(target), timeout=0.15), grpc.StatusCode.DEADLINE_EXCEEDED
    )
    async with asyncio.timeout(5):
        while harness.provider.in_flight or os.path.exists(target):
            await asyncio.sleep(0.05)
    assert mounts_under(target) == []
    assert harness.agent.table.get(target) is None
    assert not os.path.exists(target), "secret files landed on the node's disk"


@pytest.mark.parametrize("settings_overrides", [{}, {"enable_secret_rotation": True}])
async def test_a_mount_someone_else_filled_is_never_wiped(harness: AgentHarness) -> None:
    """E.g. a volume the upstream driver wrote before the switch to this agent."""
    target = harness.target()
    await harness.agent.mounter.mount(target)
    Path(target, "written-by-upstream").write_text("keep me")
    harness.write_spc(provider="nosuch")  # whatever happens next, it fails
    await harness.kubelet.publish(publish_request(target))  # success: left alone or masked
    assert Path(target, "written-by-upstream").read_text() == "keep me"
    if is_root():
        assert mounts_under(target) == [target]
    await harness.agent.mounter.unmount(target)
    harness.agent.table.forget(target)


@pytest.mark.skipif(not is_root(), reason="a tmpfs of a given size needs root")
@pytest.mark.parametrize("settings_overrides", [{"tmpfs_size": 64 * 1024}])
async def test_a_full_tmpfs_names_the_flag_and_the_size(harness: AgentHarness) -> None:
    harness.provider.files = {"small": b"s" * 100, "big": b"B" * 200_000}
    target = harness.target()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await harness.kubelet.publish(publish_request(target))
    details = caught.value.details() or ""
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "--tmpfs-size is 65536 bytes" in details
    assert "2 files of 200100 bytes" in details and "--tmpfs-size=2Mi" in details
    assert "BBBB" not in details
    assert mounts_under(target) == [] and not os.path.exists(target)


async def test_kubelets_long_lived_connection_keeps_a_bounded_stream_record(
    harness: AgentHarness,
) -> None:
    """h2 remembers every closed stream up to 65,536 per connection by default: ~10 MiB of RSS on
    kubelet's one connection (bench/memory_bench.py). The agent bounds it (csi/server.py)."""
    from agent.csi.server import MAX_CLOSED_STREAMS

    calls = MAX_CLOSED_STREAMS + 100
    for _ in range(calls):
        await harness.kubelet.call("Identity", "Probe", csi.ProbeRequest(), csi.ProbeResponse)
    [protocol] = list(harness.agent.csi._server.connections)
    remembered = protocol.connection._connection._closed_streams  # h2's private record
    assert len(remembered) <= MAX_CLOSED_STREAMS < calls
