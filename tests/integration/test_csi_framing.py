"""Requests whose gRPC framing is broken, written frame by frame (no gRPC library sends them):
each is answered with a status that says what is wrong, logged as one warning line without a
traceback, and the agent keeps serving. Before: grpclib let each escape as an application
error, UNKNOWN "Internal Server Error" to the caller and a traceback in the log."""

from __future__ import annotations

import logging

import grpc
import pytest
from structlog.testing import capture_logs

from tests.conftest import AgentHarness
from tests.support.kubelet import publish_request
from tests.support.raw_grpc import call, prefix

PUBLISH = "/csi.v1.Node/NodePublishVolume"
INTERNAL = grpc.StatusCode.INTERNAL.value[0]
UNIMPLEMENTED = grpc.StatusCode.UNIMPLEMENTED.value[0]


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        pytest.param(None, INTERNAL, "grpc: the request has no message", id="no-message"),
        pytest.param(
            b"\0\0\0",
            INTERNAL,
            "grpc: the request ended inside a message's prefix (unexpected EOF)",
            id="cut-prefix",
        ),
        pytest.param(
            prefix(100) + b"x" * 10,
            INTERNAL,
            "grpc: the request ended inside a message's body (unexpected EOF)",
            id="prefix-declares-more",
        ),
        pytest.param(
            prefix(0, flag=1),
            UNIMPLEMENTED,
            "grpc: compressed request messages are not accepted",
            id="compressed",
        ),
        pytest.param(
            prefix(0, flag=7),
            INTERNAL,
            "grpc: received unexpected payload format 7",
            id="unknown-flag",
        ),
    ],
)
async def test_a_request_with_broken_framing_is_answered_and_the_agent_keeps_serving(
    harness: AgentHarness,
    caplog: pytest.LogCaptureFixture,
    body: bytes | None,
    code: int,
    message: str,
) -> None:
    with capture_logs() as logs, caplog.at_level(logging.INFO, logger="grpclib"):
        status = await call(harness.socket, PUBLISH, body)
    assert (status.code, status.message) == (code, message)
    warnings = [e for e in logs if e["event"].startswith("csi.request")]
    assert warnings == [
        {
            "event": "csi.request_malformed",
            "log_level": "warning",
            "method": PUBLISH,
            "reason": message,
        }
    ]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert harness.provider.requests == []

    await harness.kubelet.publish(publish_request(harness.target()))
    assert len(harness.provider.requests) == 1
