"""Kubelet target paths: the string rules (agent.targets) and the on-disk walk (fs.confined)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.errors import ConfigError, InvalidRequest
from agent.fs.confined import KubeletVolumes
from agent.targets import TargetRules, pod_uid_and_volume

ROOT = "/var/lib/kubelet"
GOOD = f"{ROOT}/pods/7c6e0b2e-1d7a/volumes/kubernetes.io~csi/secrets-store-inline/mount"


def test_a_kubelet_target_is_split_into_its_parts() -> None:
    target = TargetRules().parse(GOOD)
    assert (target.root, target.pod_uid, target.volume) == (
        ROOT,
        "7c6e0b2e-1d7a",
        "secrets-store-inline",
    )
    assert target.volume_dir == GOOD.removesuffix("/mount")
    assert TargetRules().target_for("7c6e0b2e-1d7a", "secrets-store-inline") == GOOD


@pytest.mark.parametrize(
    ("path", "rule"),
    [
        ("relative/mount", "absolute and normalized"),
        (f"{ROOT}//pods/u/volumes/kubernetes.io~csi/v/mount", "absolute and normalized"),
        (f"{ROOT}/pods/u/volumes/kubernetes.io~csi/v/mount/", "absolute and normalized"),
        (f"{ROOT}/pods/u/../u/volumes/kubernetes.io~csi/v/mount", "absolute and normalized"),
        (f"//{ROOT}/pods/u/volumes/kubernetes.io~csi/v/mount", "absolute and normalized"),
        ("/x/\0/mount", "must not contain NUL"),
        ("/srv/pods/u/volumes/kubernetes.io~csi/v/mount", "below the kubelet root directory"),
        ("/var/lib/kubeletX/pods/u/volumes/kubernetes.io~csi/v/mount", "below the kubelet root"),
        (ROOT, "below the kubelet root directory"),
        (f"{ROOT}/plugins/x", "kubelet's shape"),
        (f"{ROOT}/pods/u/volumes/kubernetes.io~empty-dir/v/mount", "kubelet's shape"),
        (f"{ROOT}/pods/u/volumes/kubernetes.io~csi/v/mount/extra", "kubelet's shape"),
        (f"{ROOT}/pods/u/volumes/kubernetes.io~csi/v", "kubelet's shape"),
        (f"{ROOT}/pods/u/volumes/kubernetes.io~csi/{'v' * 256}/mount", "at most 255 bytes"),
        (f"{ROOT}/pods/{'é' * 128}/volumes/kubernetes.io~csi/v/mount", "at most 255 bytes"),
        (f"{ROOT}/pods/u/volumes/kubernetes.io~csi/{'/'.join(['v'] * 2100)}/mount", "PATH_MAX"),
    ],
)
def test_each_broken_rule_is_named(path: str, rule: str) -> None:
    with pytest.raises(InvalidRequest, match="Target path") as caught:
        TargetRules().parse(path)
    assert rule in caught.value.message
    assert len(caught.value.message) < 400  # long paths are cut in messages


def test_the_root_is_a_flag() -> None:
    rules = TargetRules("/data/kubelet/")
    assert rules.root == "/data/kubelet"
    rules.parse("/data/kubelet/pods/u/volumes/kubernetes.io~csi/v/mount")
    with pytest.raises(InvalidRequest, match=r"--kubelet-root-dir"):
        rules.parse(GOOD)
    with pytest.raises(ConfigError, match="--kubelet-root-dir"):
        TargetRules("relative/kubelet")


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (GOOD, ("7c6e0b2e-1d7a", "secrets-store-inline")),
        ("/custom/root//pods/uid-1/volumes/kubernetes.io~csi/vol/mount", ("uid-1", "vol")),
        (
            "C:\\var\\lib\\kubelet\\pods\\uid-2\\volumes\\kubernetes.io~csi\\vol2\\mount",
            ("uid-2", "vol2"),
        ),
        ("/var/lib/kubelet/pods/uid/volumes/kubernetes.io~csi/vol/mount/extra", None),
        ("/var/lib/kubelet/pods/uid/volumes/kubernetes.io~empty-dir/vol/mount", None),
        ("/tmp/csi/mount", None),
        ("", None),
    ],
)
def test_pod_uid_and_volume_under_any_root(target: str, expected: tuple[str, str] | None) -> None:
    assert pod_uid_and_volume(target) == expected


# ---- the walk below the root -------------------------------------------------------------


@pytest.fixture
def volumes(tmp_path: Path) -> KubeletVolumes:
    return KubeletVolumes(TargetRules(str(tmp_path / "kubelet")))


def volume_dir(tmp_path: Path, uid: str = "u", volume: str = "v") -> Path:
    path = tmp_path / "kubelet" / "pods" / uid / "volumes" / "kubernetes.io~csi" / volume
    path.mkdir(parents=True)
    return path


def test_make_target_creates_only_the_last_directory(
    tmp_path: Path, volumes: KubeletVolumes
) -> None:
    parent = volume_dir(tmp_path)
    target = volumes.parse(str(parent / "mount"))
    made = volumes.make_target(target)
    made.close()
    again = volumes.make_target(target)
    again.close()
    assert made.created and not again.created
    assert (parent / "mount").is_dir()
    assert oct((parent / "mount").stat().st_mode & 0o777) == oct(0o750)
    missing = volumes.parse(str(tmp_path / "kubelet/pods/w/volumes/kubernetes.io~csi/v/mount"))
    with pytest.raises(InvalidRequest, match=r"volume directory .* must exist"):
        volumes.make_target(missing)
    assert not (tmp_path / "kubelet" / "pods" / "w").exists()


@pytest.mark.parametrize("link_at", ["pods", "u", "volumes", "kubernetes.io~csi", "v", "mount"])
def test_a_symlink_at_or_above_the_target_is_refused(
    tmp_path: Path, volumes: KubeletVolumes, link_at: str
) -> None:
    parent = volume_dir(tmp_path)
    (parent / "mount").mkdir()
    real = tmp_path / "kubelet"
    chain = [real, real / "pods", real / "pods/u", real / "pods/u/volumes"]
    chain += [chain[-1] / "kubernetes.io~csi", parent, parent / "mount"]
    linked = next(p for p in chain if p.name == link_at)
    moved = tmp_path / "moved"
    linked.rename(moved)
    linked.symlink_to(moved)
    target = volumes.parse(str(parent / "mount"))
    with pytest.raises(InvalidRequest, match=f"must not pass through a symlink: .*{link_at}'"):
        os.close(volumes.open_target(target))
    with pytest.raises(InvalidRequest, match="symlink"):
        volumes.make_target(target)
    assert list(volumes.candidate_targets()) == []


def test_the_root_itself_may_be_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "data"
    parent = volume_dir(tmp_path)
    (tmp_path / "kubelet").rename(real)
    (tmp_path / "kubelet").symlink_to(real)
    (parent / "mount").mkdir()
    volumes = KubeletVolumes(TargetRules(str(tmp_path / "kubelet")))
    os.close(volumes.open_target(volumes.parse(str(parent / "mount"))))
    assert list(volumes.candidate_targets()) == [str(parent / "mount")]


def test_a_file_is_not_a_directory(tmp_path: Path, volumes: KubeletVolumes) -> None:
    parent = volume_dir(tmp_path)
    (parent / "mount").write_text("x")
    with pytest.raises(InvalidRequest, match="must be a directory"):
        os.close(volumes.open_target(volumes.parse(str(parent / "mount"))))


def test_candidate_targets_lists_every_mount_directory(
    tmp_path: Path, volumes: KubeletVolumes
) -> None:
    for uid, volume in (("a", "x"), ("a", "y"), ("b", "x")):
        (volume_dir(tmp_path, uid, volume) / "mount").mkdir()
    volume_dir(tmp_path, "c", "no-mount-yet")
    root = tmp_path / "kubelet" / "pods"
    assert list(volumes.candidate_targets()) == [
        str(root / "a/volumes/kubernetes.io~csi/x/mount"),
        str(root / "a/volumes/kubernetes.io~csi/y/mount"),
        str(root / "b/volumes/kubernetes.io~csi/x/mount"),
    ]
