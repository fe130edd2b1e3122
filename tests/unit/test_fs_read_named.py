"""Reading the files a synced Secret is built from: one content version, bounded sizes, and
nothing from outside the volume."""

from __future__ import annotations

import os
from pathlib import Path

from agent.fs.atomic_writer import AtomicWriter
from agent.fs.files import read_named_files
from agent.model import SecretFile


def _write(target: Path, files: dict[str, bytes]) -> None:
    AtomicWriter(str(target)).write([SecretFile(p, 0o644, data) for p, data in files.items()])


def test_named_files_come_from_the_current_version(tmp_path: Path) -> None:
    _write(tmp_path, {"a": b"1", "dir/b": b"2", "c": b"3"})
    _write(tmp_path, {"a": b"one", "dir/b": b"two"})
    found = read_named_files(str(tmp_path), ["a", "dir/b", "c", "dir"], limit=100)
    assert found == {"a": b"one", "dir/b": b"two"}  # c is gone, a directory is no file


def test_a_file_over_the_limit_is_reported_not_read(tmp_path: Path) -> None:
    _write(tmp_path, {"big": b"x" * 11, "small": b"y" * 10})
    assert read_named_files(str(tmp_path), ["big", "small"], limit=10) == {
        "big": None,
        "small": b"y" * 10,
    }


def test_paths_out_of_the_volume_or_reserved_are_never_read(tmp_path: Path) -> None:
    target = tmp_path / "volume"
    target.mkdir()
    _write(target, {"a": b"1"})
    (tmp_path / "outside").write_bytes(b"node file")
    names = ["../outside", "/etc/hostname", "..data/a", "./a", "a//"]
    assert read_named_files(str(target), names, limit=100) == {}


def test_legacy_volume_without_data_link_refuses_symlinks_leaving_it(tmp_path: Path) -> None:
    target = tmp_path / "volume"
    (target / "dir").mkdir(parents=True)
    (target / "plain").write_bytes(b"written by a provider itself")
    (target / "dir" / "nested").write_bytes(b"nested")
    (tmp_path / "outside").write_bytes(b"node file")
    os.symlink(tmp_path / "outside", target / "escape")
    os.symlink("dir", target / "alias")
    found = read_named_files(str(target), ["plain", "dir/nested", "escape", "alias/nested"], 100)
    assert found == {
        "plain": b"written by a provider itself",
        "dir/nested": b"nested",
        "alias/nested": b"nested",
    }
