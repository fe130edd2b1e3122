"""JsonVolumeMetadata: the non-secret record kept beside each volume."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from agent.errors import FileWriteError
from agent.fs.atomic_writer import AtomicWriter
from agent.fs.files import clear_target
from agent.fs.metadata import METADATA_FILE, JsonVolumeMetadata
from agent.model import SecretFile


async def test_save_and_load(tmp_path: Path) -> None:
    store = JsonVolumeMetadata()
    document = {
        "target_path": str(tmp_path),
        "pod": {"namespace": "ns", "name": "pod"},
        "versions": [{"id": "secret/a", "version": "v1"}],
        "mounted_at": 1.5,
    }
    await store.save(str(tmp_path), document)
    path = tmp_path / METADATA_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert await store.load(str(tmp_path)) == document
    assert [p.name for p in tmp_path.iterdir()] == [METADATA_FILE]  # no temp file left


async def test_load_missing_or_corrupt(tmp_path: Path) -> None:
    store = JsonVolumeMetadata()
    assert await store.load(str(tmp_path)) is None
    assert await store.load(str(tmp_path / "missing")) is None
    (tmp_path / METADATA_FILE).write_text("{not json")
    assert await store.load(str(tmp_path)) is None
    (tmp_path / METADATA_FILE).write_text(json.dumps([1, 2]))
    assert await store.load(str(tmp_path)) is None


async def test_load_does_not_follow_a_planted_link(tmp_path: Path) -> None:
    (tmp_path / "elsewhere.json").write_text('{"planted": true}')
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / METADATA_FILE).symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(Exception, match="volume metadata"):
        await JsonVolumeMetadata().load(str(vol))


async def test_save_into_missing_target_fails(tmp_path: Path) -> None:
    with pytest.raises(FileWriteError, match="volume metadata"):
        await JsonVolumeMetadata().save(str(tmp_path / "missing"), {"a": 1})


async def test_metadata_survives_writes_and_is_cleared(tmp_path: Path) -> None:
    store = JsonVolumeMetadata()
    await store.save(str(tmp_path), {"volume_id": "v"})
    writer = AtomicWriter(str(tmp_path))
    writer.write([SecretFile("a", 0o644, b"1")])
    writer.write([SecretFile("b", 0o644, b"2")])
    await store.save(str(tmp_path), {"volume_id": "v2"})
    writer.write([])
    assert await store.load(str(tmp_path)) == {"volume_id": "v2"}
    clear_target(str(tmp_path))
    assert os.listdir(tmp_path) == []
