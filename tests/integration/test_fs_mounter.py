"""Mounters against the real kernel: tmpfs mounts as root, and the directory mounter."""

from __future__ import annotations

import asyncio
import ctypes
import os
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.errors import ConfigError, FileWriteError, InvalidRequest, MountError
from agent.fs import mount_syscalls
from agent.fs.atomic_writer import AsyncPayloadWriter
from agent.fs.confined import KubeletVolumes
from agent.fs.metadata import METADATA_FILE, JsonVolumeMetadata
from agent.fs.mounter import DirectoryMounter, TmpfsMounter, make_mounter
from agent.fs.named_files import read_named_files
from agent.model import SecretFile, VolumeContent, VolumeState
from agent.targets import TargetRules
from tests.support.kubelet import kubelet_target
from tests.support.mounts import force_unmount_under, mounts_under, off_tmpfs
from tests.support.volume_files import read_visible_files

requires_root = pytest.mark.skipif(os.geteuid() != 0, reason="tmpfs mounts need root")


@dataclass
class MountEntry:
    options: set[str]
    fstype: str
    super_options: set[str]


def mount_entry(path: Path) -> MountEntry | None:
    """The last (topmost) /proc/self/mountinfo entry for ``path``."""
    found = None
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, right = line.split(" - ", 1)
        fields = left.split(" ")
        if fields[4] == str(path):
            fstype, _source, super_options = right.split(" ")[:3]
            found = MountEntry(set(fields[5].split(",")), fstype, set(super_options.split(",")))
    return found


@pytest.fixture
def volumes(tmp_path: Path) -> KubeletVolumes:
    return KubeletVolumes(TargetRules(str(tmp_path)))


@pytest.fixture
async def target(tmp_path: Path) -> AsyncIterator[Path]:
    """A kubelet target path whose parent (the volume directory) exists, as kubelet makes it;
    always unmounted after."""
    path = Path(kubelet_target(tmp_path))
    try:
        yield path
    finally:
        force_unmount_under(str(tmp_path))


def files(**contents: bytes) -> list[SecretFile]:
    return [SecretFile(name.replace("__", "/"), 0o600, data) for name, data in contents.items()]


@pytest.mark.root
@requires_root
async def test_tmpfs_lifecycle(volumes: KubeletVolumes, target: Path) -> None:
    mounter = TmpfsMounter(volumes, size_bytes=1024 * 1024)
    assert await mounter.is_mounted(str(target)) is False
    assert await mounter.inspect(str(target)) is None
    await mounter.mount(str(target))
    entry = mount_entry(target)
    assert entry is not None
    assert entry.fstype == "tmpfs"
    assert {"nosuid", "nodev", "noexec"} <= entry.options
    assert {"size=1024k", "mode=755"} <= entry.super_options
    assert stat.S_IMODE(target.stat().st_mode) == 0o755
    assert await mounter.is_mounted(str(target)) is True
    assert await mounter.inspect(str(target)) == VolumeState(VolumeContent.EMPTY, False)

    writer = AsyncPayloadWriter(volumes)
    assert await writer.write(str(target), files(a=b"1", d__e=b"2")) is True
    assert await mounter.inspect(str(target)) == VolumeState(VolumeContent.COMPLETE, False)
    await JsonVolumeMetadata(volumes).save(str(target), {"volume_id": "v"})
    assert read_visible_files(str(target)) == {"a": b"1", "d/e": b"2"}
    assert (target / METADATA_FILE).exists()
    assert await mounter.inspect(str(target)) == VolumeState(VolumeContent.COMPLETE, True)
    assert await mounter.discover() == [str(target)]

    await mounter.unmount(str(target))
    assert not os.path.lexists(target)
    assert mount_entry(target) is None
    assert target.parent.is_dir()
    assert await mounter.discover() == []


@pytest.mark.root
@requires_root
async def test_mount_is_idempotent_and_default_size(volumes: KubeletVolumes, target: Path) -> None:
    mounter = TmpfsMounter(volumes, size_bytes=None)
    await mounter.mount(str(target))
    await mounter.mount(str(target))
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    assert sum(1 for line in lines if line.split(" ")[4] == str(target)) == 1
    entry = mount_entry(target)
    assert entry is not None
    assert "mode=755" in entry.super_options
    await mounter.unmount(str(target))
    assert not os.path.lexists(target)


@pytest.mark.root
@requires_root
async def test_full_tmpfs_keeps_previous_content(volumes: KubeletVolumes, target: Path) -> None:
    mounter = TmpfsMounter(volumes, size_bytes=64 * 1024)
    await mounter.mount(str(target))
    writer = AsyncPayloadWriter(volumes)
    await writer.write(str(target), files(small=b"s" * 1000))
    with pytest.raises(FileWriteError) as caught:
        await writer.write(str(target), files(small=b"x" * 1000, big=b"B" * 200_000))
    assert "BBBB" not in str(caught.value)
    assert read_visible_files(str(target)) == {"small": b"s" * 1000}
    await mounter.unmount(str(target))


@pytest.mark.root
@requires_root
async def test_unmount_stacked_and_busy(volumes: KubeletVolumes, target: Path) -> None:
    mounter = TmpfsMounter(volumes, size_bytes=1024 * 1024)
    await mounter.mount(str(target))
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.mount(b"tmpfs", os.fsencode(target), b"tmpfs", 0, b"size=64k") == 0  # on top
    await AsyncPayloadWriter(volumes).write(str(target), files(a=b"1"))
    with open(target / "..data" / "a", "rb"):  # a reader keeps the mount busy
        await mounter.unmount(str(target))
    assert mount_entry(target) is None
    assert not os.path.lexists(target)


@pytest.mark.root
@requires_root
async def test_a_plain_directory_with_foreign_files_is_refused(
    volumes: KubeletVolumes, target: Path
) -> None:
    mounter = TmpfsMounter(volumes, size_bytes=None)
    target.mkdir()
    (target / "..data").mkdir()
    (target / "file").write_bytes(b"x")
    assert await mounter.is_mounted(str(target)) is False
    for call in (mounter.inspect, mounter.mount, mounter.unmount):
        with pytest.raises(InvalidRequest, match="holds files the agent did not write"):
            await call(str(target))
    assert sorted(os.listdir(target)) == ["..data", "file"]
    assert mounts_under(str(target)) == []


@pytest.mark.root
@requires_root
async def test_tmpfs_mode_owns_nothing_on_a_plain_directory(
    volumes: KubeletVolumes, target: Path
) -> None:
    """In tmpfs mode the agent writes only into its tmpfs, so the writer's layout in a plain
    directory is someone else's. Before: it counted as the agent's leftovers, and was deleted
    by a mount (which then mounted over the directory) or an unmount."""
    mounter = TmpfsMounter(volumes, size_bytes=None)
    target.mkdir()
    (target / "..2020_01_01_00_00_00.x").mkdir()
    (target / "a").symlink_to("..data/a")
    for call in (mounter.inspect, mounter.mount, mounter.unmount):
        with pytest.raises(InvalidRequest, match="holds files the agent did not write"):
            await call(str(target))
    assert sorted(os.listdir(target)) == ["..2020_01_01_00_00_00.x", "a"]
    assert mounts_under(str(target)) == []
    (target / "a").unlink()
    (target / "..2020_01_01_00_00_00.x").rmdir()
    await mounter.unmount(str(target))  # the empty directory a crash may leave: removed
    assert not os.path.lexists(target)
    await mounter.unmount(str(target))  # missing is fine
    assert await mounter.is_mounted(str(target)) is False


@pytest.mark.root
@requires_root
async def test_tmpfs_mode_reads_and_writes_a_volume_only_in_a_tmpfs(tmp_path: Path) -> None:
    """The writer, the metadata store and the reader of a tmpfs-mode stack refuse a target that
    is no tmpfs (the tmpfs unmounted behind the agent's back, or another file system mounted
    over it): before, a rotation then wrote the secrets onto the node's disk."""
    root = tmp_path / "kubelet"
    root.mkdir()
    with off_tmpfs(root):
        volumes = KubeletVolumes(TargetRules(str(root)), tmpfs_only=True)
        target = kubelet_target(root)
        mounter, writer = TmpfsMounter(volumes), AsyncPayloadWriter(volumes)
        metadata = JsonVolumeMetadata(volumes)
        await mounter.mount(target)
        assert await writer.write(target, files(a=b"1")) is True
        await metadata.save(target, {"volume_id": "v"})
        assert read_named_files(volumes, target, ["a"], 10) == {"a": b"1"}
        await mounter.unmount(target)
        os.mkdir(target)  # the tmpfs gone: the node's disk
        refusals = [
            writer.write(target, files(a=b"2")),
            metadata.save(target, {"volume_id": "v"}),
            metadata.load(target),
            asyncio.to_thread(read_named_files, volumes, target, ["a"], 10),
        ]
        for call in refusals:
            with pytest.raises(InvalidRequest, match="is not a tmpfs"):
                await call
        assert os.listdir(target) == []
        os.rmdir(target)


@pytest.mark.root
@requires_root
async def test_mount_failures_name_the_target(volumes: KubeletVolumes, tmp_path: Path) -> None:
    bad_option = TmpfsMounter(volumes, size_bytes=None, options=("nosuid", "no-such-option=1"))
    target = kubelet_target(tmp_path, "bad")
    with pytest.raises(MountError, match=target):
        await bad_option.mount(target)
    a_file = Path(kubelet_target(tmp_path, "file"))
    a_file.write_bytes(b"")
    with pytest.raises(InvalidRequest, match="must be a directory"):
        await TmpfsMounter(volumes, size_bytes=None).mount(str(a_file))


def test_invalid_size_is_a_config_error(volumes: KubeletVolumes) -> None:
    with pytest.raises(ConfigError, match="--tmpfs-size"):
        TmpfsMounter(volumes, size_bytes=0)


async def test_directory_mounter(volumes: KubeletVolumes, target: Path) -> None:
    mounter = DirectoryMounter(volumes)
    assert await mounter.is_mounted(str(target)) is False
    await mounter.mount(str(target))
    assert stat.S_IMODE(target.stat().st_mode) == 0o750
    # Upstream's Windows rule: an empty directory is not "mounted" yet.
    assert await mounter.is_mounted(str(target)) is False
    await AsyncPayloadWriter(volumes).write(str(target), files(k=b"v"))
    assert await mounter.is_mounted(str(target)) is True
    assert await mounter.discover() == [str(target)]
    await mounter.mount(str(target))
    assert read_visible_files(str(target)) == {"k": b"v"}
    (target / "foreign").write_text("x")
    with pytest.raises(InvalidRequest, match="did not write"):
        await mounter.inspect(str(target))
    (target / "foreign").unlink()
    await mounter.unmount(str(target))
    assert not target.exists()
    await mounter.unmount(str(target))


def test_make_mounter(volumes: KubeletVolumes) -> None:
    assert isinstance(make_mounter("tmpfs", volumes, 1024), TmpfsMounter)
    assert isinstance(make_mounter("directory", volumes, None), DirectoryMounter)
    with pytest.raises(ConfigError, match="'bind'"):
        make_mounter("bind", volumes, None)


def test_mount_root_detection_sees_bind_mounts(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("bind mounts need root")
    source, point = tmp_path / "src", tmp_path / "point"
    source.mkdir()
    point.mkdir()
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.mount(os.fsencode(source), os.fsencode(point), None, 4096, None) == 0  # MS_BIND
    try:
        parent = os.open(tmp_path, os.O_RDONLY)
        fd = os.open(point, os.O_RDONLY)
        try:
            assert mount_syscalls.is_mount_root(parent, fd) is True
        finally:
            os.close(fd)
            os.close(parent)
    finally:
        force_unmount_under(str(point))
