"""What an unpublish deletes, through the real CSI socket, as root: only what the agent's layout
explains. In tmpfs mode the agent's content lives in its tmpfs alone, which is unmounted whole;
what is mounted inside it and whatever lies on the node's disk below it are someone else's. In
directory mode the volume is a directory on the disk, and inside its version directories only
the kinds of entry the writer makes (regular files, directories of the same mount) are removed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.conftest import AgentHarness
from tests.integration.test_foreign_mounts import bound, copy_volume
from tests.integration.test_hostile_targets import snapshot
from tests.support.kubelet import publish_request
from tests.support.mounts import is_root, mounts_under, off_tmpfs

pytestmark = pytest.mark.skipif(not is_root(), reason="tmpfs and bind mounts need root")
VOLUME_ID = "csi-0123456789abcdef"
DIRECTORY_MODE = {"mount_mode": "directory"}


@pytest.fixture
def disk_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory on the node's disk (no tmpfs), outside the kubelet root, holding someone's
    file."""
    with off_tmpfs(tmp_path_factory.mktemp("disk")) as directory:
        (directory / "notes.txt").write_text("not the agent's")
        yield directory


async def published_with_a_subdirectory(harness: AgentHarness) -> tuple[str, Path]:
    """A published volume whose content has a directory; returns the target and that directory
    inside the current version."""
    harness.provider.files = {"username": b"admin", "certs/ca.crt": b"ca"}
    target = harness.target()
    await harness.kubelet.publish(publish_request(target))
    return target, Path(target, os.readlink(Path(target, "..data")), "certs")


async def test_an_unpublish_never_deletes_inside_a_mount_within_the_tmpfs(
    harness: AgentHarness, disk_directory: Path
) -> None:
    """Before: the secrets are removed from the tmpfs before it is detached, and that removal
    walked into a directory of the node's disk mounted inside a version directory and deleted
    its files. Now it stops at the mount; the tmpfs is detached with the mount inside it."""
    target, inside = await published_with_a_subdirectory(harness)
    before = snapshot(disk_directory)
    with bound(disk_directory, str(inside)):
        await harness.kubelet.unpublish(VOLUME_ID, target)
        assert mounts_under(target) == [] and not os.path.exists(target)
    assert snapshot(disk_directory) == before


@pytest.mark.parametrize("settings_overrides", [DIRECTORY_MODE])
async def test_directory_mode_keeps_a_mount_within_the_volume_and_says_so(
    harness: AgentHarness, disk_directory: Path
) -> None:
    """Directory mode: the agent's files are removed, the mount inside the version directory
    (and the directories leading to it) are kept, and the unpublish fails naming it, until
    someone unmounts it; then the retry finishes. Before: its files were deleted."""
    target, inside = await published_with_a_subdirectory(harness)
    before = snapshot(disk_directory)
    with bound(disk_directory, str(inside)):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await harness.kubelet.unpublish(VOLUME_ID, target)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "certs" in (refused.value.details() or "")
        assert snapshot(disk_directory) == before
        assert not Path(target, "username").exists()  # the secrets went all the same
    await harness.kubelet.unpublish(VOLUME_ID, target)
    assert not os.path.exists(target)


@pytest.mark.parametrize("settings_overrides", [DIRECTORY_MODE])
async def test_directory_mode_keeps_entries_the_writer_never_makes(
    harness: AgentHarness,
) -> None:
    """A symlink and a FIFO someone put in a version directory: the writer makes neither, so
    they are kept and named; before, the version directory was removed whole."""
    target, inside = await published_with_a_subdirectory(harness)
    os.symlink("/etc/hostname", inside / "link")
    os.mkfifo(inside.parent / "pipe")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await harness.kubelet.unpublish(VOLUME_ID, target)
    details = refused.value.details() or ""
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "pipe" in details and "link" in details
    assert os.path.islink(inside / "link") and (inside.parent / "pipe").exists()
    assert not (inside / "ca.crt").exists() and not Path(target, "username").exists()
    os.unlink(inside / "link")
    os.unlink(inside.parent / "pipe")
    await harness.kubelet.unpublish(VOLUME_ID, target)
    assert not os.path.exists(target)


async def test_tmpfs_mode_never_takes_a_layout_on_the_disk_for_its_own(
    harness: AgentHarness, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """In tmpfs mode the agent writes only into its tmpfs, so the writer's layout in a plain
    target directory (copied there, say, with someone's file inside its version directory) is
    not the agent's: the publish is refused and does not mount over it, the unpublish is
    refused, and nothing is deleted. Before: both deleted it as the agent's leftovers."""
    real = harness.target("real")
    await harness.kubelet.publish(publish_request(real, volume_id="csi-real"))
    target = harness.target()
    os.mkdir(target)
    copy_volume(real, Path(target), target=target, pod="web-0")
    before = snapshot(Path(target))

    with pytest.raises(grpc.aio.AioRpcError) as publish:
        await harness.kubelet.publish(publish_request(target))
    with pytest.raises(grpc.aio.AioRpcError) as unpublish:
        await harness.kubelet.unpublish(VOLUME_ID, target)

    for refused in (publish, unpublish):
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "holds files the agent did not write" in (refused.value.details() or "")
    assert snapshot(Path(target)) == before
    assert mounts_under(target) == []
    shutil.rmtree(target)
