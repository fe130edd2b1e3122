"""A first publish that asks a files-only provider before the mount-point check (the one-hop
path, ``agent.core.first_publish``), through the real agent: CSI socket, standalone manifests,
tmpfs. What kubelet and the operator see must be what the step-by-step path shows, and one publish
asks its provider once."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import grpc
import pytest

from tests.conftest import AgentHarness
from tests.support.kubelet import publish_request
from tests.support.mounts import MNT_DETACH


@pytest.fixture
async def files_only(harness: AgentHarness) -> AgentHarness:
    """The harness's provider as the built-in ones (``files_only``), and its class held: the
    directory read once by a first publish, as at start when the manifests are already there."""
    harness.provider.files_only = True  # type: ignore[attr-defined]
    await harness.kubelet.publish(publish_request(harness.target("first")))
    harness.provider.requests.clear()
    return harness


async def test_an_unrelated_manifest_edit_does_not_ask_the_provider_twice(
    files_only: AgentHarness,
) -> None:
    """Any change in the directory rebuilds every class; one the change left as it was is the
    same class, and the answer asked with it is written."""
    files_only.write_spc(name="other")
    await files_only.kubelet.publish(publish_request(files_only.target()))
    assert len(files_only.provider.requests) == 1


async def test_an_edited_class_is_asked_again_and_its_answer_written(
    files_only: AgentHarness,
) -> None:
    provider = files_only.provider
    provider.on_mount = lambda request: provider.files.update(
        username=request.attributes["objects"].encode()
    )
    files_only.write_spc(parameters={"objects": "- objectName: edited"})
    await files_only.kubelet.publish(publish_request(files_only.target()))
    assert Path(files_only.target(), "username").read_text() == "- objectName: edited\n"


async def test_a_refused_target_counts_without_a_provider(files_only: AgentHarness) -> None:
    """Upstream checks the mount point before it reads the class: its error is counted with
    an empty provider label, also when the provider was asked first; kubelet's retries (with
    backoff, for as long as the pod wants the volume) check first and never ask it again."""
    target = files_only.target()
    os.mkdir(target)
    Path(target, "theirs").write_text("kept")
    for _ in range(3):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await files_only.kubelet.publish(publish_request(target))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    body = files_only.agent.metrics.exposition()[0].decode()
    assert (
        'node_publish_error_total{error_type="FailedToMount",os_type="linux",provider=""} 3.0'
        in body
    )
    assert len(files_only.provider.requests) <= 1
    os.remove(Path(target, "theirs"))


async def test_a_volume_left_alone_is_not_asked_for_on_each_republish(
    files_only: AgentHarness,
) -> None:
    """Someone else's mount (a legacy plugin's files from before the switch): without
    rotation it is left alone, as upstream does, and kubelet's republishes (requiresRepublish,
    each pod sync) never multiply provider calls: the provider is asked at most once."""
    target = files_only.target()
    os.mkdir(target)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"tmpfs", target.encode(), b"tmpfs", 0, b"size=64k") != 0:
        pytest.skip("mount(2) needs root")
    try:
        Path(target, "theirs").write_text("kept")
        for _ in range(3):
            await files_only.kubelet.publish(publish_request(target))
        assert os.listdir(target) == ["theirs"]
        assert len(files_only.provider.requests) <= 1
    finally:
        libc.umount2(target.encode(), MNT_DETACH)
