"""Upstream names a pod status ``<pod>-<namespace>-<class>`` (§6); the name can pass the API
server's 253 characters though each part is a valid name. Upstream's create of that status is
refused, so its first publish fails (after asking the provider) and unmounts. Here, through the
real CSI socket in standalone mode, the publish fails the same for the same pod in both modes
(``tests/integration/k8s/test_long_names.py``): INVALID_ARGUMENT before the provider is asked or
anything mounted, naming the cause with the names cut; and every name the API server takes is
a status file too."""

from __future__ import annotations

import json

import grpc
import pytest
from structlog.testing import capture_logs

from tests.conftest import AgentHarness
from tests.integration.test_hostile_requests import assert_nothing_written
from tests.integration.test_volume_statuses import restarted
from tests.support.kubelet import publish_request


def cut(name: str) -> str:
    return repr(name[:80]) + "..."


async def test_a_status_name_over_the_limit_is_refused_before_the_provider_is_asked(
    harness: AgentHarness,
) -> None:
    """Before: the provider was asked, the tmpfs mounted and written, then the publish failed
    INTERNAL with ``invalid pod status name '<389 characters>'``, the undo logged a second
    error deleting that status, and Kubernetes mode failed INTERNAL with its own message."""
    pod, spc = "p" * 200, "c" * 180  # valid names; joined with "default": 389 characters
    harness.write_spc(name=spc)
    target = harness.target()
    with capture_logs() as logs, pytest.raises(grpc.aio.AioRpcError) as refused:
        await harness.kubelet.publish(publish_request(target, pod=pod, spc=spc))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details() == (
        "the pod's SecretProviderClassPodStatus name (<pod>-<namespace>-<class>) would be 389 "
        f"characters, over the Kubernetes limit of 253: pod default/{cut(pod)}, "
        f"secretProviderClass {cut(spc)}; shorten the pod's or the class's name"
    )
    assert harness.provider.requests == []
    await harness.statuses_written()
    assert_nothing_written(harness, target)
    problems = [entry for entry in logs if entry["log_level"] in ("warning", "error")]
    assert [entry["event"] for entry in problems] == ["node_publish.failed"]
    assert problems[0]["error"] == refused.value.details()


@pytest.mark.parametrize("length", [250, 251, 253])
async def test_every_status_name_the_api_server_takes_is_a_status_file(
    harness: AgentHarness, length: int
) -> None:
    """A file name holds 250 characters and ".yaml"; a longer status name (which Kubernetes
    mode publishes) gets a file of its own, found again after a restart and removed by the
    unpublish. Before: 251 to 253 failed the publish INTERNAL in standalone mode only."""
    spc = "c" * (length - len("web-0-default-"))
    harness.write_spc(name=spc)
    target = harness.target()
    await harness.kubelet.publish(publish_request(target, spc=spc))
    await harness.statuses_written()
    (path,) = (harness.root / "spc" / "status" / "default").glob("*.yaml")
    assert len(path.name) <= 255
    document = json.loads(path.read_text())
    assert document["metadata"]["name"] == f"web-0-default-{spc}"
    assert document["status"]["targetPath"] == target

    async with restarted(harness) as agent:
        assert [record.target_path for record in agent.table] == [target]
        assert agent.status_files is not None
        await agent.status_files.wait_idle()
        assert json.loads(path.read_text()) == document  # recovery found it unchanged
    # ``restarted`` unpublished the volume through the new agent
    assert list((harness.root / "spc" / "status" / "default").glob("*")) == []
