"""A volume the upstream driver wrote before the switch (docs/migration.md step 4), taken over
through the agent's CSI socket as kubelet's next republish reaches it: its atomic writer's
layout is recognised, refetched and recorded; a refetch that fails is masked (kubelet sees
success, the files stay) and counted as upstream counts a masked remount."""

from __future__ import annotations

import os
from pathlib import Path

from agent.errors import ProviderError
from tests.conftest import AgentHarness
from tests.support.kubelet import publish_request
from tests.support.mounts import is_root, mounts_under

UPSTREAM_DIR = "..2026_04_30_12_00_00.123456789"


async def write_like_upstream(harness: AgentHarness, target: str) -> None:
    """A mounted volume holding upstream's atomic-writer layout, without the agent's metadata."""
    await harness.agent.mounter.mount(target)
    os.mkdir(Path(target, UPSTREAM_DIR))
    Path(target, UPSTREAM_DIR, "username").write_text("old-admin")
    os.symlink(UPSTREAM_DIR, Path(target, "..data"))
    os.symlink("..data/username", Path(target, "username"))


def metric_lines(harness: AgentHarness, name: str) -> list[str]:
    body = harness.agent.metrics.exposition()[0].decode()
    return [line for line in body.splitlines() if line.startswith(name + "{")]


async def test_a_failed_refetch_is_masked_and_counted_as_an_error_only(
    harness: AgentHarness,
) -> None:
    target = harness.target()
    await write_like_upstream(harness, target)
    harness.provider.error = ProviderError("store down")
    try:
        await harness.kubelet.publish(publish_request(target))  # success: the volume works

        assert Path(target, "username").read_text() == "old-admin"
        if is_root():
            assert mounts_under(target) == [target]
        assert harness.agent.table.get(target) is None  # not taken over: the next call retries
        # Upstream counts a masked remount in node_publish_error_total only (its deferred
        # handler returns before counting a success when the error was masked).
        assert metric_lines(harness, "node_publish_error_total") == [
            'node_publish_error_total{error_type="GRPCProviderError",os_type="linux",'
            'provider="fake"} 1.0'
        ]
        assert metric_lines(harness, "node_publish_total") == []
    finally:
        await harness.agent.mounter.unmount(target)


async def test_the_next_republish_takes_the_volume_over(harness: AgentHarness) -> None:
    target = harness.target()
    await write_like_upstream(harness, target)

    await harness.kubelet.publish(publish_request(target))

    assert Path(target, "username").read_text() == "admin"  # the provider's, swapped in
    assert Path(target, "password").read_text() == "s3cr3t"
    assert not Path(target, UPSTREAM_DIR).exists()
    record = harness.agent.table.get(target)
    assert record is not None and {v.id for v in record.versions} == {"username", "password"}
    assert metric_lines(harness, "node_publish_total") == [
        'node_publish_total{os_type="linux",provider="fake"} 1.0'
    ]
    await harness.kubelet.unpublish(record.volume_id, target)
    assert not os.path.exists(target)
