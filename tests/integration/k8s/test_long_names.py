"""Upstream names a pod status ``<pod>-<namespace>-<class>`` (§6), which can pass the API's
253-character limit though each part is valid. As upstream (whose create is refused, so its
publish fails and unmounts), the publish fails, here before anything is sent: the error says
why, and nothing stays mounted or written."""

from __future__ import annotations

import grpc
import pytest

from tests.support.kube_agent import KubeHarness
from tests.support.mounts import mounts_under


async def test_a_status_name_over_the_limit_fails_the_publish_and_says_why(
    node: KubeHarness,
) -> None:
    web = await node.add_pod("w" * 240)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await node.publish(web)
    assert "must stay within 253 characters" in str(raised.value.details())
    await node.settle()
    target = node.target(web["metadata"]["uid"])
    assert not mounts_under(target)
    assert len(node.agent.table) == 0
    assert node.kube.requests.count(resource="secretproviderclasspodstatuses", verb="create") == 0
