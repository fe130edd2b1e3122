"""The agent's own files in a volume, told apart from anyone else's (agent.fs.layout)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.fs.atomic_writer import AtomicWriter
from agent.fs.layout import survey
from agent.fs.removal import MAX_DEPTH, remove_artefacts
from agent.model import SecretFile, VolumeContent

TS = "..2026_01_02_03_04_05.abcd"


def surveyed(path: Path) -> tuple[VolumeContent, bool, tuple[str, ...]]:
    fd = os.open(path, os.O_RDONLY)
    try:
        found = survey(fd)
    finally:
        os.close(fd)
    return found.content, found.has_metadata, found.foreign


def written(target: Path) -> None:
    AtomicWriter(str(target)).write([SecretFile("a", 0o644, b"1"), SecretFile("d/e", 0o600, b"2")])


def partial(target: Path) -> None:
    (target / TS).mkdir()
    (target / TS / "a").write_bytes(b"1")
    (target / "a").symlink_to("..data/a")  # dangling: no ..data yet


def with_metadata(target: Path) -> None:
    written(target)
    (target / "..agent-volume.json").write_text("{}")


def half_saved_metadata(target: Path) -> None:
    partial(target)
    (target / "..agent-volume.json.1a2b.tmp").write_text("{")


def data_points_nowhere(target: Path) -> None:
    (target / "..data").symlink_to(TS)


def foreign_file(target: Path) -> None:
    written(target)
    (target / "notes.txt").write_text("mine")


def foreign_link(target: Path) -> None:
    (target / "a").symlink_to("/etc/passwd")


def real_data_directory(target: Path) -> None:
    (target / "..data").mkdir()


def untimestamped_directory(target: Path) -> None:
    (target / "..other").mkdir()


def timestamp_and_newline_directory(target: Path) -> None:
    """Before: Python's ``$`` matches before a final newline, so this counted as a version
    directory of the writer's, to be deleted with the volume."""
    (target / f"{TS}\n").mkdir()


@pytest.mark.parametrize(
    ("make", "content", "metadata"),
    [
        (lambda _t: None, VolumeContent.EMPTY, False),
        (partial, VolumeContent.PARTIAL, False),
        (half_saved_metadata, VolumeContent.PARTIAL, False),
        (data_points_nowhere, VolumeContent.PARTIAL, False),
        (written, VolumeContent.COMPLETE, False),
        (with_metadata, VolumeContent.COMPLETE, True),
        (foreign_file, VolumeContent.FOREIGN, False),
        (foreign_link, VolumeContent.FOREIGN, False),
        (real_data_directory, VolumeContent.FOREIGN, False),
        (untimestamped_directory, VolumeContent.FOREIGN, False),
        (timestamp_and_newline_directory, VolumeContent.FOREIGN, False),
    ],
)
def test_survey(
    tmp_path: Path, make: Callable[[Path], None], content: VolumeContent, metadata: bool
) -> None:
    make(tmp_path)
    found = surveyed(tmp_path)
    assert found[:2] == (content, metadata)


def test_only_the_agents_files_are_removed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("k")
    target = tmp_path / "t"
    target.mkdir()
    with_metadata(target)
    (target / TS).mkdir()  # a half-written version beside the complete one
    (target / "..data_tmp").symlink_to(str(outside))
    (target / "notes.txt").write_text("mine")
    (target / "evil").symlink_to(str(outside))
    fd = os.open(target, os.O_RDONLY)
    try:
        found = survey(fd)
        assert found.foreign == ("evil", "notes.txt")
        remove_artefacts(fd, found.artefacts)
    finally:
        os.close(fd)
    assert sorted(os.listdir(target)) == ["evil", "notes.txt"]
    assert (outside / "keep").read_text() == "k"


def test_a_version_directory_loses_only_what_the_writer_makes(tmp_path: Path) -> None:
    """Inside a version directory the writer makes regular files and directories only; a
    symlink, a FIFO or a socket someone put there is kept (with the directories leading to it)
    and named. Before: the directory was removed whole."""
    target = tmp_path / "t"
    target.mkdir()
    written(target)
    version = target / os.readlink(target / "..data")
    os.symlink("/etc/hostname", version / "d" / "link")
    os.mkfifo(version / "pipe")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(version / "d" / "sock"))
        fd = os.open(target, os.O_RDONLY)
        try:
            kept = remove_artefacts(fd, survey(fd).artefacts)
        finally:
            os.close(fd)
    name = version.name
    assert sorted(kept) == [f"{name}/d/link", f"{name}/d/sock", f"{name}/pipe"]
    assert sorted(os.listdir(target)) == [name]
    assert sorted(os.listdir(version)) == ["d", "pipe"]
    assert sorted(os.listdir(version / "d")) == ["link", "sock"]  # "e", the secret, is gone


def test_a_tree_deeper_than_any_payload_is_kept_not_walked_to_its_end(tmp_path: Path) -> None:
    """A hostile version directory nested past MAX_DEPTH is kept below that depth (the walk
    neither recurses without end nor removes what it did not reach)."""
    target = tmp_path / "t"
    (target / TS).mkdir(parents=True)
    deep = target / TS
    for _ in range(MAX_DEPTH + 5):
        deep = deep / "d"
    os.makedirs(deep)
    (target / TS / "secret").write_bytes(b"s")
    fd = os.open(target, os.O_RDONLY)
    try:
        kept = remove_artefacts(fd, (TS,))
    finally:
        os.close(fd)
    assert kept == [f"{TS}/" + "/".join(["d"] * MAX_DEPTH)]
    assert not (target / TS / "secret").exists()
