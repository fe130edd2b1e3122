"""The CSI socket takes request messages up to upstream's 4 MiB (grpc-go's default server
receive limit), driven by a grpcio client as kubelet drives it: a larger one is refused
RESOURCE_EXHAUSTED with grpc-go's message, unread, and the agent keeps serving."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import grpc
import pytest
from structlog.testing import capture_logs

from agent._proto.csi import v1 as csi
from agent.csi.limits import MAX_RECV_MESSAGE_BYTES
from tests.conftest import AgentHarness
from tests.support.kubelet import publish_request

LIMIT = 4 * 1024 * 1024  # upstream's, written out: the test pins the number, not the constant


def padded(target: str, size: int) -> csi.NodePublishVolumeRequest:
    """A publish of the default class whose encoded message is exactly ``size`` bytes (an
    extra volume attribute, which the fake provider ignores, makes up the difference)."""
    length = 0
    for _ in range(8):
        request = publish_request(target, extra={"padding": "x" * length})
        missing = size - len(bytes(request))
        if missing == 0:
            return request
        length += missing
    raise AssertionError(f"no padding makes a {size}-byte request")


def test_the_limit_is_upstreams() -> None:
    assert MAX_RECV_MESSAGE_BYTES == LIMIT


async def test_a_request_over_the_limit_is_refused_and_the_agent_keeps_serving(
    harness: AgentHarness,
) -> None:
    with capture_logs() as logs, pytest.raises(grpc.aio.AioRpcError) as refused:
        await harness.kubelet.publish(padded(harness.target("big"), LIMIT + 1))
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert refused.value.details() == (
        f"grpc: received message larger than max ({LIMIT + 1} vs. {LIMIT})"
    )
    assert harness.provider.requests == []
    warnings: list[MutableMapping[str, Any]] = [
        e for e in logs if e["event"] == "csi.request_too_large"
    ]
    assert warnings == [
        {
            "event": "csi.request_too_large",
            "log_level": "warning",
            "method": "/csi.v1.Node/NodePublishVolume",
            "bytes": LIMIT + 1,
            "limit": LIMIT,
        }
    ]

    # The same connection serves the next calls, a request of exactly the limit among them.
    await harness.kubelet.publish(publish_request(harness.target()))
    await harness.kubelet.publish(padded(harness.target("at-limit"), LIMIT))
    assert len(harness.provider.requests) == 2
    padding = harness.provider.requests[-1].attributes["padding"]
    assert len(padding) > LIMIT - 4096 and set(padding) == {"x"}


async def test_a_far_larger_request_is_refused_without_being_read(harness: AgentHarness) -> None:
    """The refusal comes from the message's 5-byte length prefix: of a 64 MiB message the
    agent takes in no more than HTTP/2 flow control lets the caller send unasked (grpclib's
    4 MiB window), never the whole of it."""
    size = 64 * 1024 * 1024
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await harness.kubelet.publish(padded(harness.target("huge"), size))
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"({size} vs. {LIMIT})" in str(refused.value.details())
    received = sum(p.connection.data_received for p in harness.agent.csi._server.connections)
    assert received < 2 * LIMIT
    await harness.kubelet.publish(publish_request(harness.target()))
