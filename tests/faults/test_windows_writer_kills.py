"""The Windows writer SIGKILLed mid-write (``agent.crashpoints``), on Linux: what a killed
agent leaves in a Windows volume, and that the next write or an unpublish finishes the job.

The write runs in a child process armed to die at ``write.listed`` (the manifest lists old
and new files, nothing else changed) or after the n-th ``write.file_replaced``. The parent
then checks the manifest's promise: every payload file on disk is listed, each holds its old
or its new bytes (never a mix, never empty), the survey calls the volume partial, and the
agent removes nothing but its own files. No root needed: a plain directory is the volume.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from agent.crashpoints import ENVIRONMENT_VARIABLE
from agent.fs.windows.layout import MANIFEST_FILE, TMP_PREFIX, read_manifest, survey_directory
from agent.fs.windows.mounter import WindowsDirectoryMounter
from agent.fs.windows.volumes import PathVolumes
from agent.fs.windows.writer import write_files
from agent.model import SecretFile, VolumeContent
from agent.targets import make_target_rules

ROOT = "C:\\var\\lib\\kubelet"
UID = "0b7d8c1e-1c5a-4a2e-9d6f-0123456789ab"
TARGET = f"{ROOT}\\pods\\{UID}\\volumes\\kubernetes.io~csi\\secrets\\mount"
REPO = Path(__file__).resolve().parents[2]

OLD = {"tls.crt": b"old-crt" * 500, "tls.key": b"old-key" * 500, "gone": b"old-gone", "d/x": b"1"}
NEW = {"tls.crt": b"new-crt" * 700, "tls.key": b"new-key" * 700, "added": b"new", "d/x": b"2"}
CHILD = """
import json, sys
from agent.fs.windows.writer import write_files
from agent.model import SecretFile
files = [SecretFile(p, 0o644, d.encode("latin-1")) for p, d in json.loads(sys.argv[2]).items()]
write_files(sys.argv[1], files)
"""


def secret_files(contents: dict[str, bytes]) -> list[SecretFile]:
    return [SecretFile(path, 0o644, data) for path, data in contents.items()]


def killed_write(mount: Path, point: str) -> None:
    """Write NEW over OLD in a child process that SIGKILLs itself at ``point``."""
    import json

    payload = json.dumps({p: d.decode("latin-1") for p, d in NEW.items()})
    env = {**os.environ, ENVIRONMENT_VARIABLE: point, "PYTHONPATH": str(REPO)}
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(mount), payload], env=env, cwd=REPO, check=False
    )
    assert child.returncode == -signal.SIGKILL, f"the child was not killed at {point}"


def on_disk(mount: Path) -> dict[str, bytes]:
    found = {}
    for path in mount.rglob("*"):
        rel = path.relative_to(mount).as_posix()
        if path.is_file() and not rel.startswith(".."):
            found[rel] = path.read_bytes()
    return found


@pytest.fixture
def mount(tmp_path: Path) -> Path:
    mount = tmp_path / "kubelet" / "pods" / UID / "volumes" / "kubernetes.io~csi" / "secrets"
    mount = mount / "mount"
    mount.mkdir(parents=True)
    write_files(str(mount), secret_files(OLD))
    return mount


POINTS = ["write.listed", "write.file_replaced@1", "write.file_replaced@2", "write.file_replaced@3"]


@pytest.mark.parametrize("point", POINTS)
def test_a_killed_write_leaves_every_file_old_or_new_and_listed(mount: Path, point: str) -> None:
    killed_write(mount, point)
    files = on_disk(mount)
    manifest = read_manifest(str(mount))
    assert manifest is not None and not manifest.complete
    assert set(files) <= set(manifest.files) == set(OLD) | set(NEW)
    for path, data in files.items():
        assert data in (OLD.get(path), NEW.get(path)), f"{path} is neither old nor new"
    for path in set(OLD) & set(NEW):
        assert path in files  # a file kept by the payload is never missing
    replaced = sum(files.get(p) == NEW[p] for p in NEW)
    assert replaced == (0 if point == "write.listed" else int(point.rsplit("@", 1)[1]))
    survey = survey_directory(str(mount))
    assert survey.content is VolumeContent.PARTIAL and not survey.foreign


@pytest.mark.parametrize("point", POINTS)
def test_the_next_write_after_a_kill_completes_the_volume(mount: Path, point: str) -> None:
    killed_write(mount, point)
    assert write_files(str(mount), secret_files(NEW))
    assert on_disk(mount) == NEW
    manifest = read_manifest(str(mount))
    assert manifest is not None and manifest.complete and set(manifest.files) == set(NEW)
    leftovers = list(mount.rglob(f"{TMP_PREFIX}*")) + list(mount.glob(f"{MANIFEST_FILE}.*"))
    assert leftovers == []


@pytest.mark.parametrize("point", POINTS)
async def test_unpublish_after_a_kill_removes_every_file_and_nothing_else(
    mount: Path, point: str
) -> None:
    killed_write(mount, point)
    (mount.parent / "vol_data.json").write_text("{}")  # kubelet's, beside the target
    local_root = mount.parents[5]
    mounter = WindowsDirectoryMounter(
        PathVolumes(make_target_rules(ROOT, windows=True), str(local_root))
    )
    await mounter.unmount(TARGET)
    assert not mount.exists()
    assert (mount.parent / "vol_data.json").read_text() == "{}"
