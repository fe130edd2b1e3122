"""The whole agent with a Windows node's rules, driven over its CSI socket by a grpcio client
as kubelet on Windows would: target paths ``C:\\var\\lib\\kubelet\\pods\\...\\mount``, the
directory volume and the per-file writer, restart recovery. The node is emulated on Linux
(``agent.platform.emulated_windows``): ``C:\\var\\lib\\kubelet`` lives in a temporary directory
and the socket is a Linux one; docs/windows.md lists what that leaves unverified."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from agent.app import build_agent
from agent.fs.windows.layout import MANIFEST_FILE
from agent.lifecycle import Agent
from agent.platform import emulated_windows
from agent.providers.registry import ProviderRegistry
from tests.conftest import SPC_YAML, agent_settings
from tests.support.fake_provider import FakeProvider
from tests.support.kubelet import POD_UID, Kubelet, publish_request

ROOT = "C:\\var\\lib\\kubelet"


def windows_target(volume: str = "secrets", uid: str = POD_UID, root: str = ROOT) -> str:
    return f"{root}\\pods\\{uid}\\volumes\\kubernetes.io~csi\\{volume}\\mount"


@dataclass
class WindowsNode:
    root: Path
    local: Path
    provider: FakeProvider
    agent: Agent
    kubelet: Kubelet

    def volume_dir(self, volume: str = "secrets") -> Path:
        """Made as kubelet makes it before NodePublishVolume."""
        path = self.local / "pods" / POD_UID / "volumes" / "kubernetes.io~csi" / volume
        path.mkdir(parents=True, exist_ok=True)
        return path

    def build(self) -> Agent:
        settings = agent_settings(self.root, kubelet_root_dir=ROOT, mount_mode="directory")
        registry = ProviderRegistry(
            timeout=5.0,
            version_key=b"k" * 32,
            factories={"fake": lambda _ctx: self.provider},
            load_entry_points=False,
        )
        return build_agent(settings, registry=registry, platform=emulated_windows(str(self.local)))


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[WindowsNode]:
    (tmp_path / "spc").mkdir()
    (tmp_path / "spc" / "default-app-secrets.yaml").write_text(
        SPC_YAML.format(
            name="app-secrets",
            namespace="default",
            provider="fake",
            parameters="    objects: |\n      - objectName: username",
        )
    )
    placeholder = WindowsNode(tmp_path, tmp_path / "kubelet", FakeProvider(), None, None)  # type: ignore[arg-type]
    placeholder.local.mkdir()
    placeholder.agent = placeholder.build()
    await placeholder.agent.start()
    placeholder.kubelet = Kubelet(placeholder.agent.csi.path)
    try:
        yield placeholder
    finally:
        await placeholder.kubelet.close()
        await placeholder.agent.stop()


async def test_publish_and_unpublish_a_windows_target(node: WindowsNode) -> None:
    mount = node.volume_dir() / "mount"
    await node.kubelet.publish(publish_request(windows_target()))
    assert (mount / "username").read_bytes() == b"admin"
    assert (mount / "password").read_bytes() == b"s3cr3t"
    assert not [p for p in mount.iterdir() if p.is_symlink()]
    assert MANIFEST_FILE in os.listdir(mount)
    record = node.agent.table.get(windows_target())
    assert record is not None and record.target_path == windows_target()
    assert node.agent.platform.name == "windows"
    await node.kubelet.unpublish("csi-0123456789abcdef", windows_target())
    assert not mount.exists() and node.agent.table.get(windows_target()) is None


async def test_a_case_variant_of_the_target_is_the_same_volume(node: WindowsNode) -> None:
    node.volume_dir()
    await node.kubelet.publish(publish_request(windows_target(root="c:\\VAR\\lib\\Kubelet")))
    assert [r.target_path for r in node.agent.table] == [windows_target()]
    # kubelet's republish in the other spelling finds it mounted, and unpublish releases it
    await node.kubelet.publish(publish_request(windows_target()))
    assert len(node.provider.requests) == 1
    await node.kubelet.unpublish(
        "csi-0123456789abcdef", windows_target(root="C:\\VAR\\LIB\\KUBELET")
    )
    assert list(node.agent.table) == []


@pytest.mark.parametrize(
    ("path", "rule"),
    [
        ("\\\\server\\share\\pods\\x\\volumes\\kubernetes.io~csi\\v\\mount", "UNC or device"),
        ("\\\\?\\" + windows_target(), "UNC or device"),
        (windows_target().replace("\\", "/"), "backslashes only"),
        (windows_target() + ":evil", "alternate data stream"),
        (windows_target().replace("\\volumes", "\\..\\..\\volumes"), "normalized"),
        ("D:\\var\\lib\\kubelet\\pods\\u\\volumes\\kubernetes.io~csi\\v\\mount", "kubelet root"),
        ("/var/lib/kubelet/pods/u/volumes/kubernetes.io~csi/v/mount", "drive-absolute"),
    ],
)
async def test_bad_targets_are_invalid_argument_naming_the_rule(
    node: WindowsNode, path: str, rule: str
) -> None:
    node.volume_dir()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await node.kubelet.publish(publish_request(path))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert rule in (info.value.details() or "")
    assert node.provider.requests == []
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await node.kubelet.unpublish("v", path)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_payload_name_windows_cannot_hold_fails_and_leaves_nothing(
    node: WindowsNode,
) -> None:
    mount = node.volume_dir() / "mount"
    node.provider.files = {"username": b"admin", "key:stream": b"hidden"}
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await node.kubelet.publish(publish_request(windows_target()))
    assert "'key:stream'" in (info.value.details() or "")
    assert "alternate data stream" in (info.value.details() or "")
    assert not mount.exists()  # the failed first publish removed what it made


async def test_a_junction_at_the_pod_directory_is_refused(
    node: WindowsNode, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "volumes" / "kubernetes.io~csi" / "secrets").mkdir(parents=True)
    (node.local / "pods").mkdir()
    (node.local / "pods" / POD_UID).symlink_to(elsewhere)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await node.kubelet.publish(publish_request(windows_target()))
    assert "symlink or junction" in (info.value.details() or "")
    assert not (elsewhere / "volumes" / "kubernetes.io~csi" / "secrets" / "mount").exists()


async def test_a_restarted_agent_recovers_windows_volumes(node: WindowsNode) -> None:
    node.volume_dir()
    await node.kubelet.publish(publish_request(windows_target()))
    await node.kubelet.close()
    await node.agent.stop()
    node.agent = node.build()
    await node.agent.start()
    node.kubelet = Kubelet(node.agent.csi.path)
    assert [r.target_path for r in node.agent.table] == [windows_target()]
    await node.kubelet.publish(publish_request(windows_target()))
    assert len(node.provider.requests) == 1  # adopted, not fetched again
