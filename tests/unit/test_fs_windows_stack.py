"""The Windows volume stack run on Linux (``emulated_windows``): kubelet paths in Windows
spelling, checked by path; the per-file replacing writer; the directory mounter; metadata and
the reader. What differs from a real Windows node is said in docs/windows.md."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from agent.errors import FileWriteError, InvalidRequest, PayloadError
from agent.fs.layout import METADATA_FILE
from agent.fs.stack import build_volume_stack
from agent.fs.windows.layout import MANIFEST_FILE, TMP_PREFIX, read_manifest, survey_directory
from agent.fs.windows.mounter import WindowsDirectoryMounter
from agent.fs.windows.reader import WindowsVolumeReader
from agent.fs.windows.volumes import PathVolumes
from agent.fs.windows.writer import FileReplaceWriter, write_files
from agent.model import SecretFile, VolumeContent
from agent.platform import emulated_windows
from agent.targets import make_target_rules

ROOT = "C:\\var\\lib\\kubelet"
UID = "0b7d8c1e-1c5a-4a2e-9d6f-0123456789ab"
TARGET = f"{ROOT}\\pods\\{UID}\\volumes\\kubernetes.io~csi\\secrets\\mount"


class Node:
    def __init__(self, local: Path) -> None:
        self.local = local
        self.volumes = PathVolumes(make_target_rules(ROOT, windows=True), str(local))
        self.mounter = WindowsDirectoryMounter(self.volumes)
        self.writer = FileReplaceWriter(self.volumes, max_total_bytes=1 << 20)
        self.volume_dir = local / "pods" / UID / "volumes" / "kubernetes.io~csi" / "secrets"
        self.volume_dir.mkdir(parents=True)  # as kubelet does before NodePublishVolume

    @property
    def mount(self) -> Path:
        return self.volume_dir / "mount"

    def visible(self) -> dict[str, bytes]:
        found = {}
        for path in sorted(self.mount.rglob("*")):
            rel = path.relative_to(self.mount).as_posix()
            if path.is_file() and not any(part.startswith("..") for part in rel.split("/")):
                found[rel] = path.read_bytes()
        return found


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path / "kubelet")


def files(**contents: bytes) -> list[SecretFile]:
    return [SecretFile(path.replace("__", "/"), 0o644, data) for path, data in contents.items()]


async def test_publish_write_rotate_unpublish(node: Node) -> None:
    assert not await node.mounter.is_mounted(TARGET)
    await node.mounter.mount(TARGET)
    assert node.mount.is_dir() and await node.mounter.inspect(TARGET) is None
    assert await node.writer.write(TARGET, files(username=b"admin", certs__tls=b"v1"))
    assert node.visible() == {"username": b"admin", "certs/tls": b"v1"}
    assert await node.mounter.is_mounted(TARGET)
    # No symlink, junction or ..data anywhere: nothing that needs a privilege on Windows.
    assert not [p for p in node.mount.rglob("*") if p.is_symlink()]
    assert sorted(os.listdir(node.mount)) == [MANIFEST_FILE, "certs", "username"]
    assert not await node.writer.write(TARGET, files(username=b"admin", certs__tls=b"v1"))
    assert await node.writer.write(TARGET, files(username=b"root", password=b"p"))
    assert node.visible() == {"username": b"root", "password": b"p"}
    assert not (node.mount / "certs").exists()  # the emptied directory went with its file
    manifest = read_manifest(str(node.mount))
    assert manifest is not None and manifest.complete
    assert sorted(manifest.files) == ["password", "username"]
    await node.mounter.unmount(TARGET)
    assert not node.mount.exists() and node.volume_dir.is_dir()
    await node.mounter.unmount(TARGET)  # idempotent


async def test_a_name_may_turn_from_a_file_into_a_directory_and_back(node: Node) -> None:
    await node.mounter.mount(TARGET)
    await node.writer.write(TARGET, files(a=b"file"))
    await node.writer.write(TARGET, files(a__b=b"nested"))
    assert node.visible() == {"a/b": b"nested"}
    await node.writer.write(TARGET, files(a=b"file again"))
    assert node.visible() == {"a": b"file again"}


async def test_any_case_spelling_reaches_the_same_volume(node: Node) -> None:
    await node.mounter.mount(TARGET.replace("C:\\var", "c:\\VAR"))
    await node.writer.write(
        TARGET.upper().replace(UID.upper(), UID).replace("SECRETS", "secrets"), files(k=b"v")
    )
    assert node.visible() == {"k": b"v"}


async def test_windows_name_rules_guard_the_writer(node: Node) -> None:
    await node.mounter.mount(TARGET)
    with pytest.raises(PayloadError, match="alternate data stream"):
        await node.writer.write(TARGET, files(**{"key:stream": b"x"}))
    with pytest.raises(PayloadError, match="same file as"):
        await node.writer.write(
            TARGET, [SecretFile("Key", 0o644, b"1"), SecretFile("key", 0o644, b"2")]
        )
    assert node.visible() == {}


async def test_links_below_the_root_are_refused_never_followed(node: Node, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    node.mount.symlink_to(elsewhere)  # a planted link (on NTFS: a junction or symlink)
    with pytest.raises(InvalidRequest, match="symlink or junction"):
        await node.mounter.mount(TARGET)
    with pytest.raises(InvalidRequest, match="symlink or junction"):
        await node.writer.write(TARGET, files(k=b"v"))
    assert list(elsewhere.iterdir()) == []


async def test_the_pods_dir_may_be_a_mount_point_link_but_nothing_below_it(
    tmp_path: Path,
) -> None:
    """In the agent's Windows container ``<root>\\pods`` is a hostPath mount point, which a
    runtime may show as a reparse point: followed there, as the root is; refused below."""
    local = tmp_path / "container-root"
    local.mkdir()
    host_pods = tmp_path / "host-pods"
    host_pods.mkdir()
    (local / "pods").symlink_to(host_pods)
    volumes = PathVolumes(make_target_rules(ROOT, windows=True), str(local))
    mounter = WindowsDirectoryMounter(volumes)
    (host_pods / UID / "volumes" / "kubernetes.io~csi" / "secrets").mkdir(parents=True)

    await mounter.mount(TARGET)
    await FileReplaceWriter(volumes, max_total_bytes=1 << 20).write(TARGET, files(k=b"v"))
    assert (
        host_pods / UID / "volumes" / "kubernetes.io~csi" / "secrets" / "mount" / "k"
    ).read_bytes() == b"v"

    other = "0c7d8c1e-1c5a-4a2e-9d6f-0123456789ab"
    (host_pods / other).symlink_to(host_pods / UID)
    with pytest.raises(InvalidRequest, match="symlink or junction"):
        await mounter.mount(TARGET.replace(UID, other))


async def test_a_link_planted_inside_the_volume_is_replaced_not_written_through(
    node: Node, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.write_bytes(b"node file")
    await node.mounter.mount(TARGET)
    await node.writer.write(TARGET, files(k=b"v1"))
    (node.mount / "k").unlink()
    (node.mount / "k").symlink_to(outside)
    assert await node.writer.write(TARGET, files(k=b"v2"))
    assert outside.read_bytes() == b"node file"
    assert not (node.mount / "k").is_symlink() and node.visible() == {"k": b"v2"}


async def test_foreign_content_is_never_mounted_over_or_removed(node: Node) -> None:
    node.mount.mkdir()
    (node.mount / "theirs").write_text("x")
    with pytest.raises(InvalidRequest, match="holds files the agent did not write"):
        await node.mounter.inspect(TARGET)
    with pytest.raises(InvalidRequest, match="'theirs'"):
        await node.mounter.unmount(TARGET)
    assert (node.mount / "theirs").read_text() == "x"


def test_a_crash_mid_write_leaves_a_partial_volume_every_file_listed(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    node.mount.mkdir()
    write_files(str(node.mount), files(a=b"1", b=b"1"))
    real_replace, calls = os.replace, []

    def dying_replace(src: str, dst: str) -> None:
        calls.append(dst)
        if dst.endswith(os.sep + "b"):
            raise KeyboardInterrupt  # the process dies between two files
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", dying_replace)
    with pytest.raises(KeyboardInterrupt):
        write_files(str(node.mount), files(a=b"2", b=b"2", c=b"2"))
    monkeypatch.undo()
    found = survey_directory(str(node.mount))
    assert found.content is VolumeContent.PARTIAL and not found.foreign
    manifest = read_manifest(str(node.mount))
    assert manifest is not None and set(manifest.files) == {"a", "b", "c"}
    assert not [n for n in os.listdir(node.mount) if n.startswith(TMP_PREFIX)]  # cleaned up
    assert write_files(str(node.mount), files(a=b"2", b=b"2", c=b"2"))  # the next write heals
    assert survey_directory(str(node.mount)).content is VolumeContent.COMPLETE


def test_temporaries_of_a_killed_write_are_swept(node: Node) -> None:
    node.mount.mkdir()
    (node.mount / "d").mkdir()
    (node.mount / f"{TMP_PREFIX}0123").write_bytes(b"half")
    (node.mount / "d" / f"{TMP_PREFIX}4567").write_bytes(b"half")
    write_files(str(node.mount), files(k=b"v", d__x=b"y"))
    assert sorted(os.listdir(node.mount)) == [MANIFEST_FILE, "d", "k"]
    assert os.listdir(node.mount / "d") == ["x"]


def test_a_reader_never_sees_a_missing_or_partial_file_during_rotations(node: Node) -> None:
    """The guarantee docs/windows.md states, checked with a reader racing 200 rewrites (on
    Linux; Windows' MoveFileEx replace is documented, not run here)."""
    node.mount.mkdir()
    versions = [bytes([65 + i % 26]) * 50_000 for i in range(200)]
    write_files(str(node.mount), [SecretFile("cert", 0o644, versions[0])])
    done, bad = threading.Event(), []

    def read_loop() -> None:
        while not done.is_set():
            try:
                data = (node.mount / "cert").read_bytes()
            except FileNotFoundError:
                bad.append("missing")
                continue
            if data not in versions:
                bad.append(f"partial ({len(data)} bytes)")

    reader = threading.Thread(target=read_loop)
    reader.start()
    try:
        for version in versions[1:]:
            write_files(str(node.mount), [SecretFile("cert", 0o644, version)])
    finally:
        done.set()
        reader.join()
    assert bad == []


async def test_metadata_reader_and_discovery(node: Node, tmp_path: Path) -> None:
    stack = build_volume_stack(
        emulated_windows(str(node.local)),
        make_target_rules(ROOT, windows=True),
        mount_mode="directory",
        tmpfs_size=None,
        max_total_bytes=1 << 20,
    )
    await stack.mounter.mount(TARGET)
    await stack.writer.write(TARGET, files(username=b"admin", big=b"x" * 100))
    await stack.metadata.save(TARGET, {"pod": "web-0"})
    assert await stack.metadata.load(TARGET) == {"pod": "web-0"}
    assert json.loads((node.mount / METADATA_FILE).read_text()) == {"pod": "web-0"}
    state = await stack.mounter.inspect(TARGET)
    assert state is not None and state.has_metadata and state.content is VolumeContent.COMPLETE
    read = stack.read_files(TARGET, ["username", "big", "missing", "../x", "a:b"], 10)
    assert read == {"username": b"admin", "big": None}
    assert await stack.mounter.discover() == [TARGET]
    await stack.mounter.unmount(TARGET)
    assert await stack.metadata.load(TARGET) is None
    assert WindowsVolumeReader(node.volumes)(TARGET, ["username"], 10) == {}


async def test_writing_into_a_missing_target_is_a_file_write_error(node: Node) -> None:
    with pytest.raises(FileWriteError, match="does not exist"):
        await node.writer.write(TARGET, files(k=b"v"))


def test_windows_offers_directory_mode_only(tmp_path: Path) -> None:
    from agent.errors import ConfigError

    with pytest.raises(ConfigError, match="--mount-mode: tmpfs is not available on Windows"):
        build_volume_stack(
            emulated_windows(str(tmp_path)),
            make_target_rules(ROOT, windows=True),
            mount_mode="tmpfs",
            tmpfs_size=None,
            max_total_bytes=1,
        )
