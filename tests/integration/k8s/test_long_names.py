"""Upstream names a pod status ``<pod>-<namespace>-<class>`` (§6), which can pass the API's
253-character limit though each part is valid. Upstream's create is then refused, so its first
publish fails (after asking the provider) and unmounts. Here the publish fails before the
provider is asked or anything is mounted or sent, with INVALID_ARGUMENT and an event on the pod
naming the cause, as in standalone mode (``tests/integration/test_long_status_names.py``)."""

from __future__ import annotations

import grpc
import pytest

from tests.support.kube_agent import SPC, KubeHarness
from tests.support.mounts import mounts_under


async def test_a_status_name_over_the_limit_fails_the_publish_and_says_why(
    node: KubeHarness,
) -> None:
    """Before: the provider was asked and the files written, then the publish failed INTERNAL
    with the whole 260-character name, and the pod's owner saw no event of the agent's."""
    name = "w" * 240  # joined with "default" and "app-secrets": 260 characters
    web = await node.add_pod(name)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await node.publish(web)
    details = (
        "the pod's SecretProviderClassPodStatus name (<pod>-<namespace>-<class>) would be 260 "
        f"characters, over the Kubernetes limit of 253: pod default/{name[:80]!r}..., "
        f"secretProviderClass {SPC}; shorten the pod's or the class's name"
    )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == details
    event = await node.event("FailedToMount")
    assert event["involvedObject"]["name"] == name
    assert event["message"] == f"failed to mount spc default/{SPC}: {details}"
    assert node.provider.requests == []
    await node.settle()
    target = node.target(web["metadata"]["uid"])
    assert not mounts_under(target)
    assert len(node.agent.table) == 0
    assert node.kube.requests.count(resource="secretproviderclasspodstatuses", verb="create") == 0


async def test_a_status_name_of_253_characters_is_created(node: KubeHarness) -> None:
    """The limit itself is a valid name: the same pod publishes in standalone mode too."""
    name = "w" * (253 - len(f"-default-{SPC}"))
    web = await node.add_pod(name)
    target = await node.publish(web)
    await node.settle()
    status = node.status(f"{name}-default-{SPC}")
    assert status is not None and status["status"]["targetPath"] == target
