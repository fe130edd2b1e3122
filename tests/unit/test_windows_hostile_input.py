"""Hostile input against a Windows node's rules and its volume writer (run on Linux through
``emulated_windows``): what a malicious pod spec, provider or tampered volume would send, and
what must never follow from it (a write or removal outside the volume, a file misread).

Each case says what Windows itself would do with the spelling (Microsoft's "Naming Files,
Paths, and Namespaces"); the rule that refuses it is named in the error.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.errors import InvalidRequest, PayloadError
from agent.fs.paths import validate_payload
from agent.fs.windows.layout import MANIFEST_FILE, TMP_PREFIX, read_manifest
from agent.fs.windows.mounter import WindowsDirectoryMounter
from agent.fs.windows.volumes import PathVolumes
from agent.fs.windows.writer import FileReplaceWriter, write_files
from agent.model import SecretFile
from agent.targets import make_target_rules

ROOT = "C:\\var\\lib\\kubelet"
UID = "0b7d8c1e-1c5a-4a2e-9d6f-0123456789ab"
TARGET = f"{ROOT}\\pods\\{UID}\\volumes\\kubernetes.io~csi\\secrets\\mount"


def payload(*paths: str) -> list[SecretFile]:
    return [SecretFile(path, 0o644, b"x") for path in paths]


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    """A target directory the Windows writer has written once (``k``), with the node's other
    files beside the kubelet root: ``tmp_path/outside`` must never be touched."""
    local = tmp_path / "kubelet"
    mount = local / "pods" / UID / "volumes" / "kubernetes.io~csi" / "secrets" / "mount"
    mount.mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "node-file").write_bytes(b"node")
    write_files(str(mount), payload("k"))
    return mount


def plant_manifest(mount: Path, entries: list[str]) -> None:
    """What a pod with a writable volume (or anything else writing there) could leave."""
    (mount / MANIFEST_FILE).write_text(json.dumps({"files": entries, "complete": True}))


ESCAPING_ENTRIES = [
    "../../../../../../../outside/node-file",  # a POSIX '..' walk out of the volume
    "../../../../../../../outside",  # a whole directory tree (rmtree)
    "sub/../../../../../../../../outside",
    "..\\..\\..\\..\\..\\..\\..\\outside",  # Windows separators: os.path.join on a node
    "C:\\outside",  # drive-absolute: os.path.join drops the volume on Windows
    "<absolute>/node-file",  # absolute: os.path.join drops the volume everywhere
    "link/node-file",  # through a link the pod planted in its volume
]


@pytest.mark.parametrize("entry", ESCAPING_ENTRIES)
def test_a_tampered_manifest_never_removes_anything_outside_the_volume(
    volume: Path, entry: str
) -> None:
    """The manifest lives in the volume, so it is input too: an entry that names anything but
    a payload path the agent could have written is ignored, never followed."""
    outside = volume.parents[6] / "outside"
    (volume / "link").symlink_to(outside)
    plant_manifest(volume, ["k", entry.replace("<absolute>", str(outside))])
    write_files(str(volume), payload("k", "new"))
    assert (outside / "node-file").read_bytes() == b"node"
    manifest = read_manifest(str(volume))
    assert manifest is not None and set(manifest.files) == {"k", "new"}


@pytest.mark.parametrize("entry", ESCAPING_ENTRIES)
async def test_unpublish_with_a_tampered_manifest_stays_in_the_volume(
    volume: Path, entry: str
) -> None:
    outside = volume.parents[6] / "outside"
    plant_manifest(volume, ["k", entry.replace("<absolute>", str(outside))])
    volumes = PathVolumes(make_target_rules(ROOT, windows=True), str(volume.parents[6] / "kubelet"))
    await WindowsDirectoryMounter(volumes).unmount(TARGET)
    assert not volume.exists()
    assert (outside / "node-file").read_bytes() == b"node"


def test_manifest_entries_the_writer_could_not_have_made_are_dropped(volume: Path) -> None:
    plant_manifest(volume, ["k", "../x", "a:stream", "NUL", "C:\\x", "ok/file", 7])  # type: ignore[list-item]
    manifest = read_manifest(str(volume))
    assert manifest is None  # not the agent's shape: a non-string entry
    plant_manifest(volume, ["k", "../x", "a:stream", "NUL", "C:\\x", "ok/file"])
    manifest = read_manifest(str(volume))
    assert manifest is not None and manifest.files == ("k", "ok/file")


@pytest.mark.parametrize("name", [f"{TMP_PREFIX}1", "..TMP-1", "..Tmp-a.txt"])
def test_the_writers_temporary_names_are_refused_at_any_depth(volume: Path, name: str) -> None:
    """The writer sweeps ``..tmp-*`` from every directory it writes to: a payload file of that
    name (NTFS: in any case) would be swept on the next write and silently disappear."""
    with pytest.raises(PayloadError, match="reserved for the writer's temporary files"):
        validate_payload(payload(f"sub/{name}"), max_total_bytes=1024, windows=True)
    validate_payload(payload(f"sub/{name}"), max_total_bytes=1024)  # Linux has no sweep


def test_a_nested_temporary_name_cannot_vanish_from_a_written_volume(volume: Path) -> None:
    writer = FileReplaceWriter(
        PathVolumes(make_target_rules(ROOT, windows=True), str(volume.parents[6] / "kubelet"))
    )
    with pytest.raises(PayloadError):
        writer.write_blocking(TARGET, payload("k", f"sub/{TMP_PREFIX}keep"))


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("key", "KEY"),
        ("tls/Key", "TLS/key"),
        ("f\u0131le", "FILE"),  # dotless i: upper() is 'I', casefold() keeps it apart
        ("\u017fecret", "Secret"),  # long s: upper() is 'S'
        ("\u01c5", "\u01c6"),  # title case and lower case of one letter
    ],
)
def test_names_that_may_be_one_file_on_ntfs_are_duplicates(first: str, second: str) -> None:
    """NTFS compares names through its upcase table (one upper-case letter per letter), so
    every pair that upper-cases alike may be one file, and the second write would overwrite
    the first: refused, comparing by upper case *and* case folding (refusing more is safe)."""
    with pytest.raises(PayloadError, match="same file as"):
        validate_payload(payload(first, second), max_total_bytes=1024, windows=True)
    validate_payload(payload(first, second), max_total_bytes=1024)  # two files on Linux


@pytest.mark.parametrize(
    ("fixed", "variant"),
    [
        ("pods", "pod\u017f"),  # long s casefolds to 's'; NTFS upcase may keep it apart
        ("kubernetes.io~csi", "\u212aubernetes.io~csi"),  # KELVIN SIGN casefolds to 'k'
        ("mount", "mount\u200b"),  # zero-width space: another name altogether
    ],
)
def test_kubelets_fixed_names_match_in_ascii_case_only(fixed: str, variant: str) -> None:
    """Kubelet writes these names in ASCII; a non-ASCII look-alike that Python's case folding
    equates is another directory on NTFS, and must not be taken for kubelet's."""
    rules = make_target_rules(ROOT, windows=True)
    with pytest.raises(InvalidRequest, match="kubelet's shape"):
        rules.parse(TARGET.replace(f"\\{fixed}", f"\\{variant}", 1))
    assert rules.parse(TARGET.replace(f"\\{fixed}", f"\\{fixed.upper()}", 1)).path == TARGET


@pytest.mark.parametrize(
    "variant",
    [
        "C:\\VAR\\LIB\\KUBELET",
        "c:\\var\\lib\\kubelet",
    ],
)
def test_the_root_matches_in_any_ascii_case(variant: str) -> None:
    rules = make_target_rules(ROOT, windows=True)
    assert rules.parse(TARGET.replace(ROOT, variant)).path == TARGET


@pytest.mark.parametrize(
    "variant",
    [
        "C:\\var\\lib\\kubeleţ",  # another letter
        "C:\\var\\lib\\\u212aubelet",  # KELVIN SIGN: casefold() equates it with 'k'
        "C:\\var\\lib\\kubelet.",  # trailing dot: Windows drops it, we refuse the spelling
        "C:\\var\\lib\\KUBELE~1",  # a possible 8.3 short name of the root
        "C:\\var\\lib\\kubelet:x",
        "\\??\\C:\\var\\lib\\kubelet",  # NT object-manager prefix
        "\\\\?\\C:\\var\\lib\\kubelet",  # Win32 file namespace (no normalisation)
        "\\\\.\\C:\\var\\lib\\kubelet",  # Win32 device namespace
        "\\\\?\\UNC\\server\\share\\var\\lib\\kubelet",
        "\\\\localhost\\C$\\var\\lib\\kubelet",  # the root through an admin share
        "C:var\\lib\\kubelet",  # drive-relative: the current directory of drive C
        "\\var\\lib\\kubelet",  # rooted, but on the current drive
    ],
)
def test_other_spellings_of_the_root_are_refused(variant: str) -> None:
    with pytest.raises(InvalidRequest):
        make_target_rules(ROOT, windows=True).parse(TARGET.replace(ROOT, variant))


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("key:stream", "File Streams (Local File System)"),
        ("key::$DATA", "File Streams (Local File System)"),
        ("NUL .txt", "Naming Files, Paths, and Namespaces"),
        ("conout$", "Naming Files, Paths, and Namespaces"),
        ("d/key. ", "Naming Files, Paths, and Namespaces"),
        ("PROGRA~1", "Naming Files, Paths, and Namespaces"),
        ("a\x7f\x01", "Naming Files, Paths, and Namespaces"),
    ],
)
def test_payload_refusals_name_the_windows_rule_and_its_source(path: str, source: str) -> None:
    with pytest.raises(
        PayloadError, match=f'Microsoft, "{source.replace("(", ".").replace(")", ".")}"'
    ):
        validate_payload(payload(path), max_total_bytes=1 << 20, windows=True)


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("\\\\?\\" + TARGET, "Naming Files, Paths, and Namespaces"),
        (TARGET.replace("C:\\", "C:"), "Naming Files, Paths, and Namespaces"),
        (TARGET + "::$DATA", "File Streams (Local File System)"),
        (TARGET.replace("secrets", "lpt1"), "Naming Files, Paths, and Namespaces"),
    ],
)
def test_target_refusals_name_the_windows_rule_and_its_source(path: str, source: str) -> None:
    with pytest.raises(
        InvalidRequest, match=f'Microsoft, "{source.replace("(", ".").replace(")", ".")}"'
    ):
        make_target_rules(ROOT, windows=True).parse(path)


def long_path_writer(volume: Path, *, long_paths: bool) -> FileReplaceWriter:
    volumes = PathVolumes(make_target_rules(ROOT, windows=True), str(volume.parents[6] / "kubelet"))
    return FileReplaceWriter(volumes, long_paths=long_paths)


FITS = 259 - len(TARGET) - 1  # the longest file name directly in the target (MAX_PATH)
DIR_FITS = 247 - len(TARGET) - 1  # the longest directory name there (MAX_PATH - 12)


@pytest.mark.parametrize(
    ("path", "rule"),
    [
        ("f" * (FITS + 1), "file path of 260 characters; Windows allows 259 (MAX_PATH)"),
        ("d/" + "f" * (FITS - 1), "file path of 260 characters"),
        ("d" * (DIR_FITS + 1) + "/k", "directory path of 248 characters; Windows allows 247"),
        ("d" * (FITS - 18) + "/k", "file path of 260 characters"),  # its temporary file
        ("d" * DIR_FITS + "/k", "file path of 266 characters"),
        ("d/" * 80 + "k", "directory path of 248 characters"),
    ],
)
def test_a_payload_too_long_for_max_path_is_refused_before_anything_is_written(
    volume: Path, path: str, rule: str
) -> None:
    """On a node without long paths, Win32 calls fail beyond MAX_PATH: the first files would
    be written and the rest fail, each retry alike. Refused up front, naming the limit."""
    before = sorted(p.name for p in volume.iterdir())
    with pytest.raises(PayloadError, match=rule.replace("(", "\\(").replace(")", "\\)")):
        long_path_writer(volume, long_paths=False).write_blocking(TARGET, payload("a", path))
    assert sorted(p.name for p in volume.iterdir()) == before
    assert long_path_writer(volume, long_paths=True).write_blocking(TARGET, payload("a", path))


@pytest.mark.parametrize("path", ["f" * FITS, "d/" + "f" * (FITS - 2), "d" * (FITS - 19) + "/k"])
def test_a_payload_that_fits_max_path_is_written(volume: Path, path: str) -> None:
    assert long_path_writer(volume, long_paths=False).write_blocking(TARGET, payload(path))
