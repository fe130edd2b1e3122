"""AtomicWriter: upstream atomic_writer_test as a checklist, plus the agent's hardening."""

from __future__ import annotations

import asyncio
import os
import re
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.errors import FileWriteError, PayloadError, VolumeFull
from agent.fs import files as fs_files
from agent.fs.atomic_writer import AsyncPayloadWriter, AtomicWriter
from agent.fs.capacity import VolumeCapacity
from agent.fs.confined import KubeletVolumes
from agent.fs.payload_dir import paths_to_remove
from agent.model import SecretFile
from agent.targets import TargetRules
from tests.support.kubelet import kubelet_target
from tests.support.volume_files import read_visible_files

TS_RE = re.compile(r"^\.\.\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}\..+$")
Payload = dict[str, tuple[int, bytes]]


def files_of(payload: Payload) -> list[SecretFile]:
    return [SecretFile(path, mode, data) for path, (mode, data) in payload.items()]


def ts_dirs(target: Path) -> list[str]:
    return sorted(p.name for p in target.iterdir() if TS_RE.match(p.name))


def observed(target: Path) -> Payload:
    """Rebuild the payload from what a container would see (checkVolumeContents)."""
    result: Payload = {}
    for entry in target.iterdir():
        if entry.name.startswith(".."):
            continue
        assert entry.is_symlink(), entry
        assert os.readlink(entry) == f"..data/{entry.name}"
        for dirpath, _dirs, names in os.walk(entry, followlinks=True):
            for name in names:
                full = Path(dirpath, name)
                rel = full.relative_to(target).as_posix()
                result[rel] = (stat.S_IMODE(full.stat().st_mode), full.read_bytes())
        if entry.is_file():
            result[entry.name] = (stat.S_IMODE(entry.stat().st_mode), entry.read_bytes())
    return result


def check_layout(target: Path) -> str:
    """Exactly one ts dir, 0755, pointed to by a relative ``..data``; returns its name."""
    [ts] = ts_dirs(target)
    assert os.readlink(target / "..data") == ts
    assert stat.S_IMODE((target / ts).stat().st_mode) == 0o755
    assert not (target / "..data_tmp").exists()
    return ts


@pytest.fixture
def target(tmp_path: Path) -> Path:
    path = tmp_path / "vol"
    path.mkdir()
    return path


@pytest.fixture
def strict_umask() -> Iterator[None]:
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


BINARY = bytes(range(256)) * 3

WRITE_ONCE: dict[str, Payload] = {
    "basic": {"foo": (0o644, b"foo"), "bar": (0o644, b"bar")},
    "binary and dot": {"binary.bin": (0o644, BINARY), ".binary.bin": (0o644, BINARY)},
    "modes": {"foo": (0o777, b"foo"), "bar": (0o400, b"bar"), "zero": (0, b"z")},
    "dotfiles mode": {
        "foo": (0o407, b"foo"),
        "bar": (0o440, b"bar"),
        ".dotfile": (0o777, b"dotfile"),
        ".dotfile.file": (0o666, b"dotfile.file"),
    },
    "subdirectories": {
        "foo/bar.txt": (0o400, b"foo/bar"),
        "bar/zab.txt": (0o644, b"bar/zab.txt"),
        "foo/blaz/bar.txt": (0o600, b"foo/blaz/bar"),
    },
    "kitchen sink": {
        "foo.log": (0o644, b"foo"),
        ".dotfile": (0o644, b"dotfile"),
        "bar/zib/zab.txt": (0o400, b"bar/zib/zab.txt"),
        "1/2/3/4/5/6/7/8/9/10/.dotfile.lib": (0o777, b"1-2-3-dotfile"),
        "empty": (0o644, b""),
    },
}


@pytest.mark.usefixtures("strict_umask")
@pytest.mark.parametrize("name", list(WRITE_ONCE))
def test_write_once(target: Path, name: str) -> None:
    payload = WRITE_ONCE[name]
    assert AtomicWriter(str(target)).write(files_of(payload)) is True
    check_layout(target)
    assert observed(target) == payload


def test_first_write_layout(target: Path) -> None:
    AtomicWriter(str(target)).write(files_of({"a/b/c": (0o600, b"1"), "top": (0o644, b"2")}))
    ts = check_layout(target)
    assert sorted(p.name for p in target.iterdir()) == sorted(["..data", ts, "a", "top"])
    assert os.readlink(target / "a") == "..data/a"
    assert os.readlink(target / "top") == "..data/top"
    assert (target / ts / "a" / "b" / "c").read_bytes() == b"1"
    assert stat.S_IMODE((target / ts / "a" / "b").stat().st_mode) == 0o755


UPDATES: dict[str, tuple[Payload, Payload]] = {
    "update content and mode": (
        {"foo": (0o644, b"foo"), "bar": (0o644, b"bar")},
        {"foo": (0o644, b"foo2"), "bar": (0o640, b"bar2")},
    ),
    "mode only": ({"foo": (0o644, b"foo")}, {"foo": (0o600, b"foo")}),
    "add nested": (
        {"foo/bar.txt": (0o644, b"foo")},
        {"foo/bar.txt": (0o644, b"foo"), "blu/two/2/3/zip.txt": (0o644, b"zip")},
    ),
    "add into existing dir": (
        {"bar/zab.txt": (0o644, b"bar")},
        {"bar/zab.txt": (0o644, b"bar"), "bar/2/3/zip.txt": (0o644, b"zip")},
    ),
    "delete top-level": (
        {"foo/bar.txt": (0o644, b"foo"), "bar/zab.txt": (0o644, b"bar")},
        {"foo/bar.txt": (0o644, b"foo")},
    ),
    "delete nested only": (
        {"bar/1/2/sip.txt": (0o644, b"sip"), "bar/1/2/3/zab.txt": (0o644, b"bar")},
        {"bar/1/2/sip.txt": (0o644, b"sip")},
    ),
    "delete all": ({"foo/bar.txt": (0o644, b"foo"), "x": (0o644, b"x")}, {}),
    "add and delete": ({"foo/bar.txt": (0o644, b"foo")}, {"bar/baz.txt": (0o644, b"baz")}),
}


@pytest.mark.parametrize("name", list(UPDATES))
def test_update_swaps_data_and_removes_old_dir(target: Path, name: str) -> None:
    first, second = UPDATES[name]
    writer = AtomicWriter(str(target))
    writer.write(files_of(first))
    old_ts = check_layout(target)
    assert writer.write(files_of(second)) is True
    new_ts = check_layout(target)
    assert new_ts != old_ts
    assert observed(target) == second
    gone = {p.split("/")[0] for p in first} - {p.split("/")[0] for p in second}
    for top in gone:
        assert not os.path.lexists(target / top)


@pytest.mark.parametrize(
    "payload",
    [
        {"foo": (0o644, b"foo"), "bar": (0o644, b"bar")},
        {"foo/bar.txt": (0o644, b"foo"), "bar/zab.txt": (0o000, b"bar")},
        {},
    ],
)
def test_unchanged_payload_is_not_rewritten(target: Path, payload: Payload) -> None:
    writer = AtomicWriter(str(target))
    writer.write(files_of(payload))
    ts = check_layout(target)
    before = ((target / ts).stat().st_mtime_ns, target.stat().st_mtime_ns)
    assert writer.write(files_of(payload)) is False
    assert check_layout(target) == ts
    assert ((target / ts).stat().st_mtime_ns, target.stat().st_mtime_ns) == before


def test_multiple_updates(target: Path) -> None:
    writer = AtomicWriter(str(target))
    for payload in [
        {"foo": (0o644, b"foo"), "zip/zap/zup/fop.txt": (0o644, b"z")},
        {"foo": (0o400, b"foo2")},
        {"foo": (0o600, b"foo3"), "add/new/keys.txt": (0o644, b"k")},
        {"foo": (0o600, b"foo3"), "add/new/keys.txt": (0o644, b"k"), "add/k2": (0o644, b"2")},
    ]:
        writer.write(files_of(payload))
        check_layout(target)
        assert observed(target) == payload


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        ({"foo.txt": b"", "bar.txt": b""}, {"foo.txt"}, {"bar.txt"}),
        ({"foo.txt": b"", "zip/bar.txt": b""}, {"foo.txt"}, {"zip", "zip/bar.txt"}),
        (
            {"zap/1/2/3/4/bar.txt": b"", "zap/1/2/c/bar.txt": b"", "zap/1/2/magic.txt": b""},
            {"zap/1/2/magic.txt"},
            {"zap/1/2/3", "zap/1/2/3/4", "zap/1/2/3/4/bar.txt", "zap/1/2/c", "zap/1/2/c/bar.txt"},
        ),
    ],
)
def test_paths_to_remove(
    target: Path, first: dict[str, bytes], second: set[str], expected: set[str]
) -> None:
    writer = AtomicWriter(str(target))
    writer.write([SecretFile(p, 0o644, d) for p, d in first.items()])
    new = [SecretFile(p, 0o644, b"") for p in second]
    target_fd = fs_files.open_dir(str(target))
    try:
        assert paths_to_remove(target_fd, new, check_layout(target)) == expected
    finally:
        os.close(target_fd)


def test_invalid_payload_writes_nothing(target: Path) -> None:
    with pytest.raises(PayloadError, match=re.escape("'..bar'")):
        AtomicWriter(str(target)).write(files_of({"foo": (0o644, b"f"), "..bar": (0o644, b"b")}))
    assert list(target.iterdir()) == []


def test_missing_target_is_a_write_error(tmp_path: Path) -> None:
    with pytest.raises(FileWriteError, match="does not exist"):
        AtomicWriter(str(tmp_path / "nope")).write(files_of({"a": (0o644, b"a")}))


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_owner_is_set_and_owner_change_rewrites(target: Path) -> None:
    writer = AtomicWriter(str(target))
    files = files_of({"a/b": (0o400, b"x")})
    assert writer.write(files, uid=1234, gid=5678) is True
    st = (target / "a" / "b").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0o400)
    assert writer.write(files, uid=1234, gid=5678) is False
    assert writer.write(files, uid=4321) is True
    assert (target / "a" / "b").stat().st_uid == 4321


# --- legacy layout, planted links and crash leftovers -------------------------------------


def test_legacy_provider_files_are_replaced(target: Path) -> None:
    (target / "plain").write_bytes(b"old")
    (target / "dir").mkdir()
    (target / "dir" / "inner").write_bytes(b"old")
    (target / "untouched").write_bytes(b"keep")
    payload = {"plain": (0o644, b"new"), "dir/inner": (0o644, b"new")}
    AtomicWriter(str(target)).write(files_of(payload))
    assert os.readlink(target / "plain") == "..data/plain"
    assert os.readlink(target / "dir") == "..data/dir"
    assert (target / "untouched").read_bytes() == b"keep"
    assert read_visible_files(str(target)) == {
        "dir/inner": b"new",
        "plain": b"new",
        "untouched": b"keep",
    }


def test_legacy_file_over_current_content_restores_link(target: Path) -> None:
    writer = AtomicWriter(str(target))
    files = files_of({"a": (0o644, b"a")})
    writer.write(files)
    (target / "a").unlink()
    (target / "a").write_bytes(b"stale")
    assert writer.write(files) is True
    assert os.readlink(target / "a") == "..data/a"
    assert (target / "a").read_bytes() == b"a"


def test_planted_data_link_outside_cannot_redirect(tmp_path: Path, target: Path) -> None:
    outside = tmp_path / "etc"
    outside.mkdir()
    (outside / "passwd").write_bytes(b"root")
    (target / "..data").symlink_to("../etc")
    (target / "passwd").symlink_to("..data/passwd")
    AtomicWriter(str(target)).write(files_of({"passwd": (0o644, b"evil"), "x/y": (0o644, b"y")}))
    assert sorted(p.name for p in outside.iterdir()) == ["passwd"]
    assert (outside / "passwd").read_bytes() == b"root"
    check_layout(target)
    assert (target / "passwd").read_bytes() == b"evil"


def test_planted_top_level_link_is_replaced(tmp_path: Path, target: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (target / "foo").symlink_to(outside)
    AtomicWriter(str(target)).write(files_of({"foo/bar": (0o644, b"bar")}))
    assert list(outside.iterdir()) == []
    assert os.readlink(target / "foo") == "..data/foo"
    assert (target / "foo" / "bar").read_bytes() == b"bar"


def test_planted_link_inside_data_dir_is_not_followed(tmp_path: Path, target: Path) -> None:
    outside = tmp_path / "secret"
    outside.write_bytes(b"node secret")
    writer = AtomicWriter(str(target))
    writer.write(files_of({"a": (0o644, b"node secret")}))
    ts = check_layout(target)
    (target / ts / "a").unlink()
    (target / ts / "a").symlink_to(outside)
    # Same bytes behind the link, but a link is never "current content".
    assert writer.write(files_of({"a": (0o644, b"node secret")})) is True
    assert not (target / "..data" / "a").is_symlink()
    assert outside.read_bytes() == b"node secret"


def test_crash_leftovers_are_cleaned(target: Path) -> None:
    writer = AtomicWriter(str(target))
    writer.write(files_of({"a": (0o644, b"1")}))
    (target / "..2020_01_01_00_00_00.crashed").mkdir()
    (target / "..data_tmp").symlink_to("..2020_01_01_00_00_00.crashed")
    (target / "gone").symlink_to("..data/gone")  # dangling link of an interrupted write
    assert writer.write(files_of({"a": (0o644, b"2")})) is True
    check_layout(target)
    assert not os.path.lexists(target / "gone")


def test_real_data_directory_is_replaced(target: Path) -> None:
    (target / "..data").mkdir()
    (target / "..data" / "junk").write_bytes(b"j")
    AtomicWriter(str(target)).write(files_of({"a": (0o644, b"1")}))
    check_layout(target)
    assert observed(target) == {"a": (0o644, b"1")}


def test_reserved_names_survive_writes(target: Path) -> None:
    (target / "..agent-volume.json").write_text("{}")
    (target / "..other").mkdir()
    writer = AtomicWriter(str(target))
    writer.write(files_of({"a": (0o644, b"1")}))
    writer.write(files_of({"b": (0o644, b"2")}))
    writer.write(files_of({}))
    assert (target / "..agent-volume.json").read_text() == "{}"
    assert (target / "..other").is_dir()


# --- failure midway -----------------------------------------------------------------------


def test_failure_midway_keeps_previous_content(
    target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = AtomicWriter(str(target))
    old = {"a": (0o644, b"old-a"), "b/c": (0o644, b"old-c")}
    writer.write(files_of(old))
    old_ts = check_layout(target)
    real_write = fs_files.write_new_file
    calls = 0

    def failing(*args: object, **kwargs: object) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError(5, "Input/output error")
        real_write(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(fs_files, "write_new_file", failing)
    new = {"a": (0o644, b"TOPSECRET"), "b/c": (0o644, b"TOPSECRET"), "new": (0o644, b"n")}
    with pytest.raises(FileWriteError) as caught:
        writer.write(files_of(new))
    assert "'b/c'" in caught.value.message
    assert str(target) in caught.value.message
    assert "Input/output error" in caught.value.message
    assert "TOPSECRET" not in str(caught.value)
    assert check_layout(target) == old_ts
    assert observed(target) == old
    assert not os.path.lexists(target / "new")


def test_failure_at_swap_keeps_previous_content(
    target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = AtomicWriter(str(target))
    writer.write(files_of({"a": (0o644, b"old")}))
    old_ts = check_layout(target)
    real_rename = os.rename

    def failing_rename(src: str, dst: str, **fds: int) -> None:
        if str(dst).endswith("..data"):
            raise OSError(5, "Input/output error")
        real_rename(src, dst, **fds)

    monkeypatch.setattr(os, "rename", failing_rename)
    with pytest.raises(FileWriteError, match="Input/output error"):
        writer.write(files_of({"a": (0o644, b"new"), "b": (0o644, b"b")}))
    monkeypatch.undo()
    assert check_layout(target) == old_ts
    assert observed(target) == {"a": (0o644, b"old")}
    assert not os.path.lexists(target / "b")  # the link made for the failed write is gone


# --- readers and unpublish ----------------------------------------------------------------


def test_read_visible_files(tmp_path: Path, target: Path) -> None:
    AtomicWriter(str(target)).write(
        files_of({"a": (0o000, b"1"), "d/e/f": (0o600, b"2"), ".hidden": (0o644, b"3")})
    )
    (tmp_path / "host-secret").write_bytes(b"nope")
    (target / "evil").symlink_to(tmp_path / "host-secret")
    (target / "..agent-volume.json").write_text("{}")
    assert read_visible_files(str(target)) == {".hidden": b"3", "a": b"1", "d/e/f": b"2"}
    assert read_visible_files(str(tmp_path / "missing")) == {}


@pytest.mark.parametrize(
    ("capacity", "expected"),
    [
        (
            VolumeCapacity(tmpfs=True, size_bytes=65536),
            "is 65536 bytes; a rotation needs room for two versions side by side, so raise it "
            "to at least --tmpfs-size=2Mi",
        ),
        (VolumeCapacity(tmpfs=True), "--tmpfs-size is unset"),
        (VolumeCapacity(), "no space left on the node's disk"),
    ],
)
def test_a_full_file_system_names_its_remedy(
    target: Path, monkeypatch: pytest.MonkeyPatch, capacity: VolumeCapacity, expected: str
) -> None:
    writer = AtomicWriter(str(target), capacity=capacity)
    writer.write(files_of({"a": (0o644, b"old")}))
    old_ts = check_layout(target)

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fs_files, "write_new_file", full)
    with pytest.raises(VolumeFull) as caught:
        writer.write(files_of({"a": (0o644, b"TOPSECRET"), "b": (0o644, b"x" * 5000)}))
    message = caught.value.message
    assert expected in message
    assert "2 files of 5009 bytes (12288 bytes in 4 KiB pages)" in message
    assert str(target) in message and "TOPSECRET" not in message
    assert check_layout(target) == old_ts


def test_stale_half_written_directories_are_swept_before_writing(target: Path) -> None:
    writer = AtomicWriter(str(target))
    writer.write(files_of({"a": (0o644, b"1")}))
    stale = target / "..2020_01_01_00_00_00.crashed"
    stale.mkdir()
    (stale / "big").write_bytes(b"x" * 100)
    seen: list[bool] = []
    real_write = fs_files.write_new_file

    def recording(*args: object, **kwargs: object) -> None:
        seen.append(stale.exists())
        real_write(*args, **kwargs)  # type: ignore[arg-type]

    fs_files.write_new_file = recording
    try:
        writer.write(files_of({"a": (0o644, b"2")}))
    finally:
        fs_files.write_new_file = real_write
    assert seen == [False]  # gone before the new version took any room


# --- the async port -----------------------------------------------------------------------


@pytest.fixture
def volumes(tmp_path: Path) -> KubeletVolumes:
    return KubeletVolumes(TargetRules(str(tmp_path)))


def made(path: str) -> str:
    os.mkdir(path)
    return path


async def test_async_writer_runs_off_the_loop(
    tmp_path: Path, volumes: KubeletVolumes, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: set[int] = set()
    real_write = fs_files.write_new_file

    def recording(*args: object, **kwargs: object) -> None:
        threads.add(threading.get_ident())
        real_write(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(fs_files, "write_new_file", recording)
    writer = AsyncPayloadWriter(volumes)
    target = made(kubelet_target(tmp_path))
    files = files_of({"a": (0o600, b"1"), "b/c": (0o644, b"2")})
    assert await writer.write(target, files) is True
    assert await writer.write(target, files) is False
    assert threads
    assert threading.get_ident() not in threads
    assert read_visible_files(target) == {"a": b"1", "b/c": b"2"}


async def test_async_writer_errors(tmp_path: Path, volumes: KubeletVolumes) -> None:
    writer = AsyncPayloadWriter(volumes, max_total_bytes=4)
    target = made(kubelet_target(tmp_path))
    with pytest.raises(PayloadError, match="'big'"):
        await writer.write(target, files_of({"big": (0o644, b"12345")}))
    missing = kubelet_target(tmp_path, "missing")
    with pytest.raises(FileWriteError) as caught:
        await writer.write(missing, files_of({"a": (0o644, b"SEC")}))
    assert missing in caught.value.message
    assert "SEC" not in str(caught.value)
    assert caught.value.reason == "FileWriteError"


async def test_async_writer_never_writes_through_a_symlink(
    tmp_path: Path, volumes: KubeletVolumes
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = kubelet_target(tmp_path)
    os.symlink(elsewhere, target)
    with pytest.raises(PayloadError.__mro__[1], match="symlink"):
        await AsyncPayloadWriter(volumes).write(target, files_of({"a": (0o644, b"1")}))
    assert list(elsewhere.iterdir()) == []


async def test_async_writer_concurrent_targets(tmp_path: Path, volumes: KubeletVolumes) -> None:
    writer = AsyncPayloadWriter(volumes)
    targets = [made(kubelet_target(tmp_path, f"v{i}")) for i in range(8)]
    results = await asyncio.gather(
        *(writer.write(p, files_of({"k": (0o644, p.encode())})) for p in targets)
    )
    assert results == [True] * 8
    assert [read_visible_files(p) for p in targets] == [{"k": p.encode()} for p in targets]
