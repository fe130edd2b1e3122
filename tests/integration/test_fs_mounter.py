"""Mounters against the real kernel: tmpfs mounts as root, and the directory mounter."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.errors import ConfigError, FileWriteError, MountError
from agent.fs import mounter as mounter_mod
from agent.fs.atomic_writer import AsyncPayloadWriter
from agent.fs.files import read_visible_files
from agent.fs.metadata import METADATA_FILE, JsonVolumeMetadata
from agent.fs.mounter import DirectoryMounter, TmpfsMounter, make_mounter, mount_points
from agent.model import SecretFile

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


def force_unmount(path: Path) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    for _ in range(16):
        if str(path) not in mount_points():
            return
        libc.umount2(os.fsencode(path), mounter_mod.MNT_DETACH)


@pytest.fixture
async def target(tmp_path: Path) -> AsyncIterator[Path]:
    """A kubelet-like target path whose parents do not exist yet; always unmounted after."""
    path = tmp_path / "pods" / "uid-1" / "volumes" / "kubernetes.io~csi" / "vol" / "mount"
    try:
        yield path
    finally:
        force_unmount(path)


def files(**contents: bytes) -> list[SecretFile]:
    return [SecretFile(name.replace("__", "/"), 0o600, data) for name, data in contents.items()]


@pytest.mark.root
@requires_root
async def test_tmpfs_lifecycle(target: Path) -> None:
    mounter = TmpfsMounter(size_bytes=1024 * 1024)
    assert await mounter.is_mounted(str(target)) is False
    await mounter.mount(str(target))
    entry = mount_entry(target)
    assert entry is not None
    assert entry.fstype == "tmpfs"
    assert {"nosuid", "nodev", "noexec"} <= entry.options
    assert {"size=1024k", "mode=755"} <= entry.super_options
    assert stat.S_IMODE(target.stat().st_mode) == 0o755
    assert await mounter.is_mounted(str(target)) is True

    writer = AsyncPayloadWriter()
    assert await writer.write(str(target), files(a=b"1", d__e=b"2")) is True
    await JsonVolumeMetadata().save(str(target), {"volume_id": "v"})
    assert read_visible_files(str(target)) == {"a": b"1", "d/e": b"2"}
    assert (target / METADATA_FILE).exists()

    await mounter.unmount(str(target))
    assert not os.path.lexists(target)
    assert mount_entry(target) is None
    assert target.parent.is_dir()


@pytest.mark.root
@requires_root
async def test_mount_is_idempotent_and_default_size(target: Path) -> None:
    mounter = TmpfsMounter(size_bytes=None)
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
async def test_full_tmpfs_keeps_previous_content(target: Path) -> None:
    mounter = TmpfsMounter(size_bytes=64 * 1024)
    await mounter.mount(str(target))
    writer = AsyncPayloadWriter()
    await writer.write(str(target), files(small=b"s" * 1000))
    with pytest.raises(FileWriteError) as caught:
        await writer.write(str(target), files(small=b"x" * 1000, big=b"B" * 200_000))
    assert "'big'" in caught.value.message
    assert "BBBB" not in str(caught.value)
    assert read_visible_files(str(target)) == {"small": b"s" * 1000}
    await mounter.unmount(str(target))


@pytest.mark.root
@requires_root
async def test_corrupt_mount_is_unmounted(target: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mounter = TmpfsMounter(size_bytes=1024 * 1024)
    await mounter.mount(str(target))
    real_listdir = os.listdir

    def broken(path: str = ".") -> list[str]:
        if str(path) == str(target):
            raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")
        return real_listdir(path)

    monkeypatch.setattr(os, "listdir", broken)
    assert await mounter.is_mounted(str(target)) is False
    monkeypatch.undo()
    assert mount_entry(target) is None
    await mounter.unmount(str(target))


@pytest.mark.root
@requires_root
async def test_unmount_stacked_and_busy(target: Path) -> None:
    mounter = TmpfsMounter(size_bytes=1024 * 1024)
    await mounter.mount(str(target))
    mounter_mod._sys_mount(str(target), 0, "size=64k")  # a second mount on top
    await AsyncPayloadWriter().write(str(target), files(a=b"1"))
    with open(target / "..data" / "a", "rb"):  # a reader keeps the mount busy
        await mounter.unmount(str(target))
    assert mount_entry(target) is None
    assert not os.path.lexists(target)


@pytest.mark.root
@requires_root
async def test_unmount_plain_directory_and_missing(tmp_path: Path) -> None:
    mounter = TmpfsMounter(size_bytes=None)
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "..data").mkdir()
    (plain / "file").write_bytes(b"x")
    assert await mounter.is_mounted(str(plain)) is False
    await mounter.unmount(str(plain))
    assert not plain.exists()
    await mounter.unmount(str(tmp_path / "never-existed"))
    assert await mounter.is_mounted(str(tmp_path / "never-existed")) is False


@pytest.mark.root
@requires_root
async def test_mount_failures_name_the_target(tmp_path: Path) -> None:
    bad_option = TmpfsMounter(size_bytes=None, options=("nosuid", "no-such-option=1"))
    target = tmp_path / "t"
    with contextlib.ExitStack() as stack:
        stack.callback(force_unmount, target)
        with pytest.raises(MountError, match=re.escape(str(target))):
            await bad_option.mount(str(target))
    a_file = tmp_path / "file"
    a_file.write_bytes(b"")
    with pytest.raises(MountError, match=re.escape(str(a_file))):
        await TmpfsMounter(size_bytes=None).mount(str(a_file))


def test_invalid_size_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        TmpfsMounter(size_bytes=0)


async def test_directory_mounter(tmp_path: Path) -> None:
    mounter = DirectoryMounter()
    target = tmp_path / "a" / "b" / "mount"
    assert await mounter.is_mounted(str(target)) is False
    await mounter.mount(str(target))
    assert stat.S_IMODE(target.stat().st_mode) == 0o750
    # Upstream's Windows rule: an empty directory is not "mounted" yet.
    assert await mounter.is_mounted(str(target)) is False
    await AsyncPayloadWriter().write(str(target), files(k=b"v"))
    assert await mounter.is_mounted(str(target)) is True
    await mounter.mount(str(target))
    assert read_visible_files(str(target)) == {"k": b"v"}
    await mounter.unmount(str(target))
    assert not target.exists()
    await mounter.unmount(str(target))


def test_make_mounter() -> None:
    assert isinstance(make_mounter("tmpfs", 1024), TmpfsMounter)
    assert isinstance(make_mounter("directory", None), DirectoryMounter)
    with pytest.raises(ConfigError, match="'bind'"):
        make_mounter("bind", None)
