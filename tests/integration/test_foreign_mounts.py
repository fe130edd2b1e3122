"""Another file system mounted at a target (a bind mount of a directory on the node's disk),
through the real CSI socket, as root: in tmpfs mode the agent writes secrets only into its own
tmpfs, so a publish onto such a mount is refused naming the rule, and nothing is written into it
or changed on it (the mount stays, its files stay, nothing is recorded)."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.conftest import AgentHarness
from tests.integration.test_hostile_targets import snapshot
from tests.support.kubelet import publish_request
from tests.support.mounts import is_root, mounts_under

pytestmark = pytest.mark.skipif(not is_root(), reason="bind mounts need root")
RULE = "is the mount of another file system, not a tmpfs"


@pytest.fixture
def disk_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory on the node's disk, outside the kubelet root."""
    return tmp_path_factory.mktemp("disk")


@pytest.fixture
def bind_mounted(harness: AgentHarness, disk_directory: Path) -> Iterator[str]:
    target = harness.target()
    os.mkdir(target)
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.mount(str(disk_directory).encode(), target.encode(), None, 4096, None) == 0
    try:
        yield target
    finally:
        libc.umount2(target.encode(), 2)


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
