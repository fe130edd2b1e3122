"""JsonVolumeMetadata: the non-secret record kept beside each volume."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from agent.errors import FileWriteError, InvalidRequest, VolumeFull
from agent.fs.atomic_writer import AtomicWriter
from agent.fs.capacity import VolumeCapacity
from agent.fs.confined import KubeletVolumes
from agent.fs.layout import survey
from agent.fs.metadata import METADATA_FILE, JsonVolumeMetadata
from agent.fs.removal import remove_artefacts
from agent.model import SecretFile
from agent.targets import TargetRules
from tests.support.kubelet import kubelet_target


@pytest.fixture
def store(tmp_path: Path) -> JsonVolumeMetadata:
    return JsonVolumeMetadata(KubeletVolumes(TargetRules(str(tmp_path))))


@pytest.fixture
def target(tmp_path: Path) -> Path:
    path = Path(kubelet_target(tmp_path))
    path.mkdir()
    return path


async def test_save_and_load(store: JsonVolumeMetadata, target: Path) -> None:
    document = {
        "target_path": str(target),
        "pod": {"namespace": "ns", "name": "pod"},
        "versions": [{"id": "secret/a", "version": "v1"}],
        "mounted_at": 1.5,
    }
    await store.save(str(target), document)
    path = target / METADATA_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert await store.load(str(target)) == document
    assert [p.name for p in target.iterdir()] == [METADATA_FILE]  # no temp file left


async def test_load_missing_or_corrupt(
    store: JsonVolumeMetadata, target: Path, tmp_path: Path
) -> None:
    assert await store.load(str(target)) is None
    assert await store.load(kubelet_target(tmp_path, "missing")) is None
    (target / METADATA_FILE).write_text("{not json")
    assert await store.load(str(target)) is None
    (target / METADATA_FILE).write_text(json.dumps([1, 2]))
    assert await store.load(str(target)) is None


async def test_load_does_not_follow_a_planted_link(
    store: JsonVolumeMetadata, target: Path, tmp_path: Path
) -> None:
    (tmp_path / "elsewhere.json").write_text('{"planted": true}')
    (target / METADATA_FILE).symlink_to(tmp_path / "elsewhere.json")
    assert await store.load(str(target)) is None


async def test_never_reached_through_a_symlinked_target(
    store: JsonVolumeMetadata, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = kubelet_target(tmp_path)
    os.symlink(elsewhere, target)
    with pytest.raises(InvalidRequest, match="symlink"):
        await store.save(target, {"a": 1})
    with pytest.raises(InvalidRequest, match="symlink"):
        await store.load(target)
    assert list(elsewhere.iterdir()) == []


async def test_save_into_missing_target_fails(store: JsonVolumeMetadata, tmp_path: Path) -> None:
    with pytest.raises(FileWriteError, match="volume metadata"):
        await store.save(kubelet_target(tmp_path, "missing"), {"a": 1})


async def test_a_full_tmpfs_names_the_flag(
    tmp_path: Path, target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    volumes = KubeletVolumes(TargetRules(str(tmp_path)))
    store = JsonVolumeMetadata(volumes, VolumeCapacity(tmpfs=True, size_bytes=4096))
    real_open = os.open

    def full(path: str, flags: int, *args: object, **kwargs: object) -> int:
        if str(path).startswith(METADATA_FILE):
            raise OSError(28, "No space left on device")
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", full)
    with pytest.raises(VolumeFull, match="--tmpfs-size is 4096 bytes"):
        await store.save(str(target), {"a": 1})


async def test_metadata_survives_writes_and_is_one_of_the_agents_files(
    store: JsonVolumeMetadata, target: Path
) -> None:
    await store.save(str(target), {"volume_id": "v"})
    writer = AtomicWriter(str(target))
    writer.write([SecretFile("a", 0o644, b"1")])
    writer.write([SecretFile("b", 0o644, b"2")])
    await store.save(str(target), {"volume_id": "v2"})
    writer.write([])
    assert await store.load(str(target)) == {"volume_id": "v2"}
    fd = os.open(target, os.O_RDONLY)
    try:
        found = survey(fd)
        assert found.has_metadata and not found.foreign
        remove_artefacts(fd, found.artefacts)
    finally:
        os.close(fd)
    assert os.listdir(target) == []
