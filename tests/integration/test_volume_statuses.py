"""One pod status per volume, never another's; and restart recovery that does not depend on it.

Upstream names a SecretProviderClassPodStatus ``<pod>-<namespace>-<class>``, so two volumes of one
pod that use one class share it. The agent keeps that name, but a second volume never overwrites
or deletes the status the first one still needs, and recovery finds volumes by scanning the
kubelet tree for the metadata beside each mount.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from structlog.testing import capture_logs

from agent.app import build_agent
from agent.errors import ProviderError
from agent.fs.layout import METADATA_FILE
from agent.lifecycle import Agent
from agent.providers.registry import ProviderRegistry
from tests.conftest import AgentHarness
from tests.support.kubelet import publish_request
from tests.support.mounts import is_root, mounts_under

STATUS_NAME = "web-0-default-app-secrets"


async def status_files(
    harness: AgentHarness, agent: Agent | None = None
) -> dict[str, dict[str, Any]]:
    """The status files once ``agent`` (default: the harness's) has written what it queued."""
    files = (agent or harness.agent).status_files
    assert files is not None
    await files.wait_idle()
    found = {}
    for path in sorted((harness.root / "spc" / "status").glob("*/*.yaml")):
        found[path.stem] = json.loads(path.read_text())
    return found


async def status_target(harness: AgentHarness, agent: Agent | None = None) -> str | None:
    document = (await status_files(harness, agent)).get(STATUS_NAME)
    return None if document is None else str(document["status"]["targetPath"])


@asynccontextmanager
async def restarted(harness: AgentHarness) -> AsyncIterator[Agent]:
    """Stop the agent (kubelet keeps the volumes mounted) and start a new one on the same node."""
    await harness.agent.stop()
    for record in list(harness.agent.table):
        harness.agent.table.forget(record.target_path)
    registry = ProviderRegistry(
        timeout=5, version_key=b"k" * 32, factories={"fake": lambda _c: harness.provider}
    )
    agent = build_agent(harness.settings, registry=registry)
    await agent.start()
    try:
        yield agent
    finally:
        for record in list(agent.table):  # clean up as kubelet would, through the new agent
            await harness.kubelet.unpublish(record.volume_id, record.target_path)
        await agent.stop()


async def test_a_failed_second_volume_keeps_the_first_ones_status_and_recovery(
    harness: AgentHarness,
) -> None:
    """The reported case: a pod with two volumes of one class; the second fails to publish."""
    first, second = harness.target("vol-a"), harness.target("vol-b")
    await harness.kubelet.publish(publish_request(first))
    assert (await status_target(harness)) == first
    harness.provider.error = ProviderError("permission denied")
    with pytest.raises(grpc.aio.AioRpcError):
        await harness.kubelet.publish(publish_request(second, volume_id="csi-b"))
    assert (await status_target(harness)) == first, (
        "the failing volume deleted the working one's status"
    )
    assert mounts_under(second) == [] and not os.path.exists(second)
    harness.provider.error = None
    async with restarted(harness) as agent:
        record = agent.table.get(first)
        assert record is not None and record.spc_name == "app-secrets"
        assert (await status_target(harness, agent)) == first


async def test_a_second_volume_never_overwrites_and_inherits_on_unpublish(
    harness: AgentHarness,
) -> None:
    first, second = harness.target("vol-a"), harness.target("vol-b")
    await harness.kubelet.publish(publish_request(first))
    await harness.kubelet.publish(publish_request(second, volume_id="csi-b"))
    assert (await status_target(harness)) == first
    await harness.kubelet.unpublish("csi-a", first)
    assert (await status_target(harness)) == second  # handed over: the pod still mounts the class
    await harness.kubelet.unpublish("csi-b", second)
    assert (await status_files(harness)) == {}


@pytest.mark.parametrize(
    "settings_overrides", [{}, {"mount_mode": "directory"}], ids=["default", "directory-mode"]
)
async def test_recovery_finds_volumes_whose_status_is_lost(harness: AgentHarness) -> None:
    """Directory mode too: the tmpfs rule recovery applies (another file system mounted at a
    target is not adopted) leaves its volumes, directories on the node's disk, as they were."""
    target = harness.target()
    await harness.kubelet.publish(publish_request(target))
    await harness.statuses_written()
    for path in (harness.root / "spc" / "status").glob("*/*.yaml"):
        path.unlink()
    async with restarted(harness) as agent:
        assert agent.table.get(target) is not None
        assert (await status_target(harness, agent)) == target  # rewritten from the metadata


async def test_restart_removes_the_status_of_a_volume_that_is_gone(
    harness: AgentHarness,
) -> None:
    """E.g. the agent was killed after unmounting but before deleting the status."""
    target = harness.target()
    await harness.kubelet.publish(publish_request(target))
    await harness.agent.mounter.unmount(target)
    harness.agent.table.forget(target)
    assert (await status_target(harness)) == target
    async with restarted(harness) as agent:
        assert len(agent.table) == 0
        assert (await status_files(harness, agent)) == {}


async def test_restart_repairs_a_status_that_drifted_from_the_metadata(
    harness: AgentHarness,
) -> None:
    """Killed between the metadata save and the status save of a rotation."""
    target = harness.target()
    await harness.kubelet.publish(publish_request(target))
    await harness.statuses_written()
    [path] = (harness.root / "spc" / "status").glob("*/*.yaml")
    document = json.loads(path.read_text())
    document["status"]["objects"] = [{"id": "username", "version": "stale"}]
    path.write_text(json.dumps(document))
    async with restarted(harness) as agent:
        objects = (await status_files(harness, agent))[STATUS_NAME]["status"]["objects"]
        assert {o["id"] for o in objects} == {"username", "password"}
        assert "stale" not in {o["version"] for o in objects}


async def test_a_volume_killed_before_its_metadata_is_recognised_and_healed(
    harness: AgentHarness,
) -> None:
    """Content and status written, metadata not: at restart the volume is left for kubelet's
    retry and its status goes; the republish records both again, or the unpublish removes it."""
    target = harness.target()
    await harness.kubelet.publish(publish_request(target))
    Path(target, METADATA_FILE).unlink()
    async with restarted(harness) as agent:
        assert agent.table.get(target) is None
        assert mounts_under(target) == [target] or not is_root()
        assert (await status_files(harness, agent)) == {}
        await harness.kubelet.publish(publish_request(target))
        assert agent.table.get(target) is not None
        assert Path(target, METADATA_FILE).exists()
        assert (await status_target(harness, agent)) == target
    # And when the pod goes away instead of retrying:
    target = harness.target("vol-c")
    async with restarted(harness) as agent:
        await harness.kubelet.publish(publish_request(target))
        Path(target, METADATA_FILE).unlink()
        agent.table.forget(target)  # the kill: nothing of it survives in memory
    async with restarted(harness) as agent:
        assert agent.table.get(target) is None and (await status_files(harness, agent)) == {}
        await harness.kubelet.unpublish("csi-c", target)
        assert not os.path.exists(target) and (await status_files(harness, agent)) == {}


async def test_an_unpublish_right_after_the_publish_never_leaves_a_status(
    harness: AgentHarness,
) -> None:
    """The status file is written behind the publish's reply; an unpublish that follows at once
    drops it if still queued, or waits for it and deletes it (both orders, over many pods)."""
    for index in range(20):
        target = harness.target(f"vol-{index}")
        await harness.kubelet.publish(publish_request(target, volume_id=f"csi-{index}"))
        await harness.kubelet.unpublish(f"csi-{index}", target)
        assert (await status_files(harness)) == {}, f"a status outlived volume {index}"


async def test_a_status_file_that_cannot_be_written_never_fails_the_publish(
    harness: AgentHarness,
) -> None:
    """Statuses are informational: a broken status directory is logged and the write retried
    while the volume is served; what is still queued is tried once more at stop."""
    blocker = harness.root / "spc" / "status" / "default"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("not a directory")
    target = harness.target()
    with capture_logs() as logs:
        await harness.kubelet.publish(publish_request(target))
        assert harness.agent.table.get(target) is not None
        for _ in range(5000):
            if any(e["event"] == "pod_status.write_retrying" for e in logs):
                break
            await asyncio.sleep(0.001)
    [retrying] = [e for e in logs if e["event"] == "pod_status.write_retrying"][:1]
    assert retrying["name"] == STATUS_NAME and "cannot write pod status" in retrying["error"]
    blocker.unlink()
    assert harness.agent.status_files is not None
    await harness.agent.status_files.close()  # what the agent's stop does
    assert (await status_target(harness)) == target
