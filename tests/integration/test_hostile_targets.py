"""Hostile target paths through the real CSI socket: each is refused with InvalidArgument naming
the rule it breaks, for NodePublishVolume and NodeUnpublishVolume alike, and a canary tree
around the target (inside and outside the kubelet root) is byte-for-byte unchanged: contents,
modes, link targets and modification times."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from agent.targets import pod_uid_and_volume
from tests.conftest import AgentHarness
from tests.support.kubelet import POD_UID, publish_request
from tests.support.mounts import mounts_under

Snapshot = dict[str, tuple[object, ...]]


def snapshot(*roots: Path) -> Snapshot:
    """Every entry below ``roots``: type, mode, size, mtime, and the bytes or link target."""
    found: Snapshot = {}
    for root in roots:
        for directory, dirnames, filenames in os.walk(root):
            for name in [*dirnames, *filenames, ""]:
                path = Path(directory, name)
                st = path.lstat()
                if stat.S_ISLNK(st.st_mode):
                    body: object = os.readlink(path)
                elif stat.S_ISREG(st.st_mode):
                    body = path.read_bytes()
                else:
                    body = None
                found[str(path)] = (st.st_mode, st.st_size, st.st_mtime_ns, body)
    return found


@dataclass
class Scene:
    root: Path  # the kubelet root (--kubelet-root-dir)
    canary: Path  # a tree outside the kubelet root

    def volume_dir(self, uid: str = POD_UID, volume: str = "v") -> Path:
        path = self.root / "pods" / uid / "volumes" / "kubernetes.io~csi" / volume
        path.mkdir(parents=True, exist_ok=True)
        return path


def plain_directory_outside(scene: Scene) -> str:
    return str(scene.canary / "important")


def plain_directory_inside(scene: Scene) -> str:
    (scene.root / "plugins" / "other").mkdir(parents=True)
    (scene.root / "plugins" / "other" / "state.json").write_text("{}")
    return str(scene.root / "plugins" / "other")


def symlink_as_target(scene: Scene) -> str:
    target = scene.volume_dir() / "mount"
    target.symlink_to(scene.canary / "important")
    return str(target)


def symlink_above_target(scene: Scene) -> str:
    elsewhere = scene.canary / "pod"
    (elsewhere / "volumes" / "kubernetes.io~csi" / "v" / "mount").mkdir(parents=True)
    (elsewhere / "volumes" / "kubernetes.io~csi" / "v" / "mount" / "data").write_text("mine")
    (scene.root / "pods").mkdir(exist_ok=True)
    (scene.root / "pods" / "linked-uid").symlink_to(elsewhere)
    return str(scene.root / "pods/linked-uid/volumes/kubernetes.io~csi/v/mount")


def symlink_as_volume_directory(scene: Scene) -> str:
    scene.volume_dir()
    volume = scene.root / "pods" / POD_UID / "volumes" / "kubernetes.io~csi" / "w"
    volume.symlink_to(scene.canary)
    return str(volume / "mount")


def non_empty_directory(scene: Scene) -> str:
    target = scene.volume_dir() / "mount"
    target.mkdir()
    (target / "notes.txt").write_text("not the agent's")
    (target / "..data").mkdir()
    return str(target)


def file_as_target(scene: Scene) -> str:
    target = scene.volume_dir() / "mount"
    target.write_text("a file")
    return str(target)


def outside_the_kubelet_root(scene: Scene) -> str:
    mount = scene.canary / "pods" / POD_UID / "volumes" / "kubernetes.io~csi" / "v" / "mount"
    mount.mkdir(parents=True)
    (mount / "keep").write_text("k")
    return str(mount)


def dot_dot_escape(scene: Scene) -> str:
    scene.volume_dir()
    return str(scene.root / "pods" / POD_UID / ".." / ".." / ".." / scene.canary.name / "x/mount")


def over_long_component(scene: Scene) -> str:
    return str(scene.root / "pods" / ("u" * 300) / "volumes/kubernetes.io~csi/v/mount")


def over_long_path(scene: Scene) -> str:
    return str(
        scene.root / "pods" / POD_UID / "volumes/kubernetes.io~csi" / ("v/" * 2100) / "mount"
    )


def missing_volume_directory(scene: Scene) -> str:
    (scene.root / "pods").mkdir(exist_ok=True)
    return str(scene.root / "pods/never-created/volumes/kubernetes.io~csi/v/mount")


CASES: list[tuple[Callable[[Scene], str], str, str | None]] = [
    # (make the scene and return the target, rule named on publish, rule on unpublish or None=OK)
    (plain_directory_outside, "below the kubelet root directory", "below the kubelet root"),
    (plain_directory_inside, "kubelet's shape", "kubelet's shape"),
    (symlink_as_target, "must not pass through a symlink", "must not pass through a symlink"),
    (symlink_above_target, "must not pass through a symlink", "must not pass through a symlink"),
    (symlink_as_volume_directory, "must not pass through a symlink", "pass through a symlink"),
    (non_empty_directory, "holds files the agent did not write", "did not write"),
    (file_as_target, "must be a directory", "must be a directory"),
    (outside_the_kubelet_root, "below the kubelet root directory", "below the kubelet root"),
    (dot_dot_escape, "absolute and normalized", "absolute and normalized"),
    (over_long_component, "at most 255 bytes", "at most 255 bytes"),
    (over_long_path, "PATH_MAX", "PATH_MAX"),
    (missing_volume_directory, "must exist (kubelet creates it", None),
]


@pytest.mark.parametrize(
    ("make", "publish_rule", "unpublish_rule"), CASES, ids=[c[0].__name__ for c in CASES]
)
async def test_hostile_target_is_refused_and_nothing_changes(
    harness: AgentHarness,
    tmp_path_factory: pytest.TempPathFactory,
    make: Callable[[Scene], str],
    publish_rule: str,
    unpublish_rule: str | None,
) -> None:
    scene = Scene(harness.root, tmp_path_factory.mktemp("canary"))
    (scene.canary / "important").mkdir()
    (scene.canary / "important" / "passwd").write_bytes(b"root:x:0:0\n")
    (scene.canary / "important" / "sub").mkdir(mode=0o700)
    (scene.canary / "important" / "sub" / "key").write_bytes(os.urandom(64))
    target = make(scene)
    before = snapshot(scene.root / "pods", scene.root / "plugins", scene.canary)

    # As kubelet: the pod UID in the volume context is the one in the path.
    parsed = pod_uid_and_volume(target)
    request = publish_request(target, uid=parsed[0] if parsed else POD_UID)
    with pytest.raises(grpc.aio.AioRpcError) as published:
        await harness.kubelet.publish(request)
    assert published.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert publish_rule in (published.value.details() or "")
    assert "Target path" in (published.value.details() or "")

    if unpublish_rule is None:
        await harness.kubelet.unpublish("csi-x", target)  # nothing there: nothing to do
    else:
        with pytest.raises(grpc.aio.AioRpcError) as unpublished:
            await harness.kubelet.unpublish("csi-x", target)
        assert unpublished.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert unpublish_rule in (unpublished.value.details() or "")

    after = snapshot(scene.root / "pods", scene.root / "plugins", scene.canary)
    assert after == before
    assert harness.provider.requests == []
    assert mounts_under(str(scene.root)) == [] and mounts_under(str(scene.canary)) == []
    assert not list((harness.root / "spc").glob("status/**/*.yaml"))
