"""Another file system mounted at a target (a bind mount of a directory on the node's disk),
through the real CSI socket, as root: in tmpfs mode the agent writes secrets only into its own
tmpfs, so a publish onto such a mount is refused naming the rule, and nothing is written into it
or changed on it (the mount stays, its files stay, nothing is recorded). A restart does not adopt
one either, whatever metadata it holds, and an unpublish detaches it without deleting anything
in it."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
from structlog.testing import capture_logs

from agent.fs.layout import DATA_DIR, METADATA_FILE
from tests.conftest import AgentHarness
from tests.integration.test_hostile_targets import snapshot
from tests.integration.test_volume_statuses import restarted, status_files
from tests.support.kubelet import publish_request
from tests.support.mounts import MNT_DETACH, is_root, mounts_under, off_tmpfs
from tests.support.rotation import INTERVAL, rotation_harness

pytestmark = pytest.mark.skipif(not is_root(), reason="bind mounts need root")
RULE = "is the mount of another file system, not a tmpfs"
MS_BIND = 4096


@contextmanager
def bound(source: Path, point: str) -> Iterator[str]:
    """``source`` bind-mounted at ``point`` (made if missing) until the block ends."""
    os.makedirs(point, exist_ok=True)
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.mount(os.fsencode(source), os.fsencode(point), None, MS_BIND, None) == 0
    try:
        yield point
    finally:
        libc.umount2(os.fsencode(point), MNT_DETACH)


@pytest.fixture
def disk_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory on the node's disk (no tmpfs), outside the kubelet root."""
    with off_tmpfs(tmp_path_factory.mktemp("disk")) as directory:
        yield directory


@pytest.fixture
def bind_mounted(harness: AgentHarness, disk_directory: Path) -> Iterator[str]:
    with bound(disk_directory, harness.target()) as target:
        yield target


@pytest.mark.parametrize(
    ("settings_overrides", "theirs"),
    [({}, None), ({}, "notes.txt"), ({"enable_secret_rotation": True}, "notes.txt")],
    ids=["empty", "with-files", "with-files-rotation-on"],
)
async def test_a_publish_onto_another_file_systems_mount_writes_nothing_into_it(
    harness: AgentHarness, disk_directory: Path, bind_mounted: str, theirs: str | None
) -> None:
    """Before: an empty mount counted as the agent's own tmpfs left empty by a crash, and was
    filled; with rotation on, a mount holding files was refetched into. Either way the secrets
    went to the node's disk, and the publish answered OK."""
    if theirs is not None:
        (disk_directory / theirs).write_text("not the agent's")
    before = snapshot(disk_directory)

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await harness.kubelet.publish(publish_request(bind_mounted))

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert RULE in (refused.value.details() or "")
    await harness.statuses_written()
    assert snapshot(disk_directory) == before
    assert mounts_under(bind_mounted) == [bind_mounted]
    assert list(harness.agent.table) == []
    assert list(harness.root.glob("spc/status/*/*")) == []


def copy_volume(volume: str, into: Path, *, target: str, pod: str) -> None:
    """A copy of a volume's whole layout, its metadata rewritten to name ``target`` and
    ``pod``: what a node directory holding a copied or forged volume looks like."""
    shutil.copytree(volume, into, symlinks=True, dirs_exist_ok=True)
    document = json.loads((into / METADATA_FILE).read_text())
    document["target_path"] = target
    document["pod"]["name"] = pod
    (into / METADATA_FILE).write_text(json.dumps(document))
    version = into / os.readlink(into / DATA_DIR)
    (version / "notes.txt").write_text("someone else's, inside the copied version directory")


@pytest.mark.parametrize("settings_overrides", [{"enable_secret_rotation": True}])
async def test_a_restart_never_adopts_another_file_systems_mount(
    harness: AgentHarness, disk_directory: Path
) -> None:
    """Before: any mount holding metadata was adopted at a restart: its status was written,
    rotation wrote the pod's secrets into it (the node's disk), and its unpublish deleted the
    copied layout, files someone put inside its version directory included. Now it is logged
    with the rule and left as it is; its status goes with the other stale ones; the unpublish
    detaches it and deletes nothing in it."""
    real, copied = harness.target("real"), harness.target("copied")
    await harness.kubelet.publish(publish_request(real, volume_id="csi-real"))
    copy_volume(real, disk_directory, target=copied, pod="copied-0")
    before = snapshot(disk_directory)

    with bound(disk_directory, copied), capture_logs() as logs:
        async with restarted(harness) as agent:
            assert agent.table.get(copied) is None
            assert agent.table.get(real) is not None  # the agent's own tmpfs is adopted
            [refused] = [e for e in logs if e["event"] == "recovery.volume_refused"]
            assert refused["target_path"] == copied and RULE in refused["error"]
            assert set(await status_files(harness, agent)) == {"web-0-default-app-secrets"}
            assert snapshot(disk_directory) == before

            await harness.kubelet.unpublish("csi-copied", copied)

            assert mounts_under(copied) == [] and not os.path.exists(copied)
            assert snapshot(disk_directory) == before


async def test_an_unpublish_detaches_a_mount_stacked_on_the_volume_and_keeps_its_files(
    harness: AgentHarness, disk_directory: Path
) -> None:
    """Another file system mounted over the agent's tmpfs: before, the unpublish deleted what
    looked like the writer's files in it (a copied layout) before detaching it."""
    target = harness.target()
    await harness.kubelet.publish(publish_request(target))
    copy_volume(target, disk_directory, target=target, pod="web-0")
    before = snapshot(disk_directory)
    with bound(disk_directory, target):
        await harness.kubelet.unpublish("csi-0123456789abcdef", target)
        assert mounts_under(target) == [] and not os.path.exists(target)
    assert snapshot(disk_directory) == before


async def test_rotation_never_writes_into_a_file_system_mounted_over_a_volume(
    agent_root: Path, disk_directory: Path
) -> None:
    """A bind mount put over a volume the agent already holds: before, the next rotation wrote
    the pod's secrets into it, that is onto the node's disk. Now every write, metadata save and
    read of a volume checks that the target is a tmpfs (tmpfs mode), so the rotation fails and
    the mount keeps what it held."""
    (disk_directory / "notes.txt").write_text("not the agent's")
    before = snapshot(disk_directory)
    async for harness in rotation_harness(agent_root):
        target = await harness.publish("9d0c2f7e-55aa-4c37-8e0e-1b2c3d4e5f60")
        harness.provider.files["password"] = b"rotated"
        with bound(disk_directory, target), capture_logs() as logs:
            await harness.advance(INTERVAL * 1.11)
            assert harness.fetches() == 2  # the rotation did ask the provider
            assert snapshot(disk_directory) == before
            [failed] = [e for e in logs if e["event"] == "rotation.failed"]
            assert "is not a tmpfs" in failed["error"]
            await harness.unpublish(target)
        assert mounts_under(target) == [] and not os.path.exists(target)
    assert snapshot(disk_directory) == before
