"""A pod's fsGroup (``volume_mount_group``, sent by kubelet because the agent advertises
VOLUME_MOUNT_GROUP): the group of every file and directory the agent writes, the modes the
class asked for unchanged, through rotation and a restart. Real CSI socket (grpcio), real tmpfs
as root."""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from agent.app import build_agent
from agent.providers.registry import ProviderRegistry
from tests.conftest import AgentHarness
from tests.support.kubelet import publish_request
from tests.support.mounts import is_root, mounts_under
from tests.support.rotation import INTERVAL, RotationHarness, rotation_harness

pytestmark = pytest.mark.skipif(not is_root(), reason="giving files a group needs root")

GROUP = 4321
DUE = INTERVAL * 1.11  # past the interval and its jitter (at most 10 %)
FIELD = "volume_capability.mount.volume_mount_group"


@pytest.fixture
async def rotating(agent_root: Path) -> AsyncIterator[RotationHarness]:
    async for running in rotation_harness(agent_root):
        yield running


def groups_and_modes(target: str) -> dict[str, tuple[int, int]]:
    """Every file and directory below the visible version (``..data``), with the version
    directory itself as ``.``: path -> (group, mode)."""
    data = os.path.realpath(os.path.join(target, "..data"))
    found = {".": _group_and_mode(data)}
    for directory, dirs, files in os.walk(data):
        for name in dirs + files:
            path = os.path.join(directory, name)
            found[os.path.relpath(path, data)] = _group_and_mode(path)
    return found


def _group_and_mode(path: str) -> tuple[int, int]:
    st = os.lstat(path)
    return st.st_gid, stat.S_IMODE(st.st_mode)


async def test_the_pods_group_owns_every_file_and_directory_with_modes_unchanged(
    harness: AgentHarness,
) -> None:
    harness.provider.files = {"username": b"admin", "password": b"s3cr3t", "tls/ca.crt": b"CA"}
    harness.provider.modes = {"password": 0o440, "tls/ca.crt": 0o600}
    target = harness.target()
    await harness.kubelet.publish(publish_request(target, mount_group=str(GROUP)))
    assert groups_and_modes(target) == {
        ".": (GROUP, 0o755),
        "username": (GROUP, 0o644),
        "password": (GROUP, 0o440),  # group read because the class asked for 0440, no more
        "tls": (GROUP, 0o755),
        "tls/ca.crt": (GROUP, 0o600),
    }
    assert os.stat(target).st_mode & 0o005 == 0o005  # others traverse the tmpfs root
    assert Path(target, "password").read_bytes() == b"s3cr3t"


async def test_a_pod_without_fs_group_gets_the_agents_group(harness: AgentHarness) -> None:
    target = harness.target()
    await harness.kubelet.publish(publish_request(target))  # kubelet sends "" then
    assert {group for group, _ in groups_and_modes(target).values()} == {os.getegid()}


@pytest.mark.parametrize(
    "value",
    [
        "-1",
        "abc",
        "4294967295",
        "99999999999999999999999",
        "+5",
        " 5",
        "5 ",
        "1_0",
        "\u0661",
    ],  # an Arabic-Indic one: int() takes it
)
async def test_a_group_that_is_not_a_gid_is_refused_naming_the_field(
    harness: AgentHarness, value: str
) -> None:
    target = harness.target()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await harness.kubelet.publish(publish_request(target, mount_group=value))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = info.value.details() or ""
    assert FIELD in details and repr(value)[1:-1] in details
    assert mounts_under(target) == [] and harness.provider.requests == []


async def test_the_highest_group_is_accepted(harness: AgentHarness) -> None:
    target = harness.target()
    await harness.kubelet.publish(publish_request(target, mount_group="4294967294"))
    assert Path(target, "username").stat().st_gid == 4294967294


async def test_rotation_writes_in_the_pods_group(rotating: RotationHarness) -> None:
    target = await rotating.publish(str(uuid.uuid4()), mount_group=str(GROUP))
    rotating.provider.files["password"] = b"rotated"
    rotating.provider.files["nested/new"] = b"added"
    await rotating.advance(DUE)
    assert Path(target, "password").read_bytes() == b"rotated"
    assert {group for group, _ in groups_and_modes(target).values()} == {GROUP}


async def test_a_group_first_sent_on_a_republish_is_applied_by_the_next_rotation(
    rotating: RotationHarness,
) -> None:
    """As for a volume adopted from metadata without a group: the republish only records it
    (a republish never writes), the next rotation rewrites the unchanged content in it."""
    uid = str(uuid.uuid4())
    target = await rotating.publish(uid)
    await rotating.publish(uid, mount_group=str(GROUP))
    assert Path(target, "password").stat().st_gid == os.getegid()
    await rotating.advance(DUE)
    assert rotating.fetches() == 2
    assert {group for group, _ in groups_and_modes(target).values()} == {GROUP}


async def test_a_restarted_agent_keeps_the_group_for_rotation(rotating: RotationHarness) -> None:
    uid = str(uuid.uuid4())
    target = await rotating.publish(uid, mount_group=str(GROUP))
    await rotating.agent.stop()  # kubelet keeps the volume mounted
    rotating.agent.table.forget(target)
    registry = ProviderRegistry(
        timeout=5, version_key=b"k", factories={"fake": lambda _c: rotating.provider}
    )
    restarted = build_agent(rotating.settings, registry=registry, clock=rotating.clock)
    await restarted.start()
    try:
        record = restarted.table.get(target)
        assert record is not None and record.mount_group == GROUP  # from the volume's metadata
    finally:
        await rotating.unpublish(target)
        await restarted.stop()
