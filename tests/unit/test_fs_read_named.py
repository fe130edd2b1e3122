"""Reading the files a synced Secret is built from: one content version, bounded sizes, and
nothing from outside the volume (no link at, above or inside the target is followed out)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.errors import InvalidRequest
from agent.fs.atomic_writer import AtomicWriter
from agent.fs.confined import KubeletVolumes
from agent.fs.named_files import read_named_files
from agent.model import SecretFile
from agent.targets import TargetRules

NODE_FILE = b"node file"


@pytest.fixture
def volumes(tmp_path: Path) -> KubeletVolumes:
    return KubeletVolumes(TargetRules(str(tmp_path / "kubelet")))


@pytest.fixture
def target(volumes: KubeletVolumes) -> Path:
    path = Path(volumes.root) / "pods" / "uid-1" / "volumes" / "kubernetes.io~csi" / "v" / "mount"
    path.mkdir(parents=True)
    return path


def _write(target: Path, files: dict[str, bytes]) -> None:
    AtomicWriter(str(target)).write([SecretFile(p, 0o644, data) for p, data in files.items()])


def _read(volumes: KubeletVolumes, target: Path, names: list[str]) -> dict[str, bytes | None]:
    return read_named_files(volumes, str(target), names, limit=100)


def test_named_files_come_from_the_current_version(volumes: KubeletVolumes, target: Path) -> None:
    _write(target, {"a": b"1", "dir/b": b"2", "c": b"3"})
    _write(target, {"a": b"one", "dir/b": b"two"})
    found = _read(volumes, target, ["a", "dir/b", "c", "dir"])
    assert found == {"a": b"one", "dir/b": b"two"}  # c is gone, a directory is no file


def test_a_file_over_the_limit_is_reported_not_read(volumes: KubeletVolumes, target: Path) -> None:
    _write(target, {"big": b"x" * 11, "small": b"y" * 10})
    assert read_named_files(volumes, str(target), ["big", "small"], limit=10) == {
        "big": None,
        "small": b"y" * 10,
    }


def test_paths_out_of_the_volume_or_reserved_are_never_read(
    volumes: KubeletVolumes, target: Path
) -> None:
    _write(target, {"a": b"1"})
    (target.parent / "outside").write_bytes(NODE_FILE)
    names = ["../outside", "/etc/hostname", "..data/a", "./a", "a//"]
    assert _read(volumes, target, names) == {}


def test_links_inside_the_written_version_are_not_followed(
    volumes: KubeletVolumes, target: Path, tmp_path: Path
) -> None:
    _write(target, {"a": b"1"})
    (tmp_path / "outside").write_bytes(NODE_FILE)
    version = target / os.readlink(target / "..data")
    os.symlink(tmp_path / "outside", version / "planted")
    os.symlink(tmp_path, version / "dir")
    assert _read(volumes, target, ["a", "planted", "dir/outside"]) == {"a": b"1"}


def test_legacy_volume_follows_only_relative_links_that_stay_inside(
    volumes: KubeletVolumes, target: Path, tmp_path: Path
) -> None:
    (target / "dir").mkdir()
    (target / "plain").write_bytes(b"written by a provider itself")
    (target / "dir" / "nested").write_bytes(b"nested")
    (tmp_path / "outside").write_bytes(NODE_FILE)
    os.symlink(tmp_path / "outside", target / "escape")
    os.symlink("../../../../../../../outside", target / "climb")
    os.symlink(target / "dir", target / "absolute")  # absolute, even to inside: not followed
    os.symlink("dir", target / "alias")
    os.symlink("./dir/../dir/nested", target / "dotted")
    names = ["plain", "dir/nested", "escape", "climb", "absolute/nested", "alias/nested", "dotted"]
    assert _read(volumes, target, names) == {
        "plain": b"written by a provider itself",
        "dir/nested": b"nested",
        "alias/nested": b"nested",
        "dotted": b"nested",
    }


def test_legacy_link_to_a_directory_that_becomes_a_link_is_not_followed(
    volumes: KubeletVolumes, target: Path, tmp_path: Path
) -> None:
    """The link's text stays inside the volume (``a/etc/shadow``), but ``a`` is a link to a
    node directory (a reader that resolved first and opened later could lose this to a swap;
    opening component by component without following links cannot)."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "shadow").write_bytes(NODE_FILE)
    os.symlink("a/etc/shadow", target / "cert")
    os.symlink(tmp_path, target / "a")
    assert _read(volumes, target, ["cert"]) == {}


@pytest.mark.parametrize("level", [3, 0], ids=["pod directory", "volume directory"])
def test_a_link_at_or_above_the_target_is_refused(
    volumes: KubeletVolumes, target: Path, tmp_path: Path, level: int
) -> None:
    _write(target, {"password": b"from the volume"})
    planted = target.parents[level]
    node = tmp_path / "node"
    shaped = node / target.relative_to(planted)
    shaped.mkdir(parents=True)
    _write(shaped, {"password": NODE_FILE})
    planted.rename(planted.with_name(planted.name + ".aside"))
    os.symlink(node, planted)
    assert (target / "password").read_bytes() == NODE_FILE  # a plain open follows it
    with pytest.raises(InvalidRequest, match="must not pass through a symlink"):
        _read(volumes, target, ["password"])


def test_a_target_outside_the_kubelet_root_is_refused(
    volumes: KubeletVolumes, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _write(elsewhere, {"password": NODE_FILE})
    with pytest.raises(InvalidRequest, match="below the kubelet root"):
        _read(volumes, elsewhere, ["password"])
