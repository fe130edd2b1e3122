"""Kubelet dials the CSI socket anew for every call (pkg/volume/csi/csi_client.go: a connection
per call, closed after it). The agent builds a few connections' HTTP/2 state ahead
(``agent.csi.spare_connections``): every call on a new connection must be served as before,
whether a spare was ready or not, and a stopped agent builds none."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection

from agent._proto.csi import v1 as csi
from agent.aio.inflight import InFlight
from agent.csi import spare_connections
from agent.csi.server import CsiServer
from agent.csi.servicers import IdentityService
from tests.conftest import AgentHarness
from tests.support.kubelet import Kubelet, publish_request
from tests.support.mounts import mounts_under
from tests.support.raw_grpc import prefix


async def _caps_then_publish(socket: str, target: str) -> None:
    """Kubelet's NodePublishVolume: a capability call, then the publish, each on its own
    connection."""
    for call in ("caps", "publish"):
        kubelet = Kubelet(socket)
        try:
            if call == "caps":
                await kubelet.call(
                    "Node",
                    "NodeGetCapabilities",
                    csi.NodeGetCapabilitiesRequest(),
                    csi.NodeGetCapabilitiesResponse,
                )
            else:
                await kubelet.publish(publish_request(target))
        finally:
            await kubelet.close()


@pytest.fixture
def refill_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spare_connections, "REFILL_AFTER_S", 0.0)


async def _refilled(harness: AgentHarness) -> None:
    spares = harness.agent.csi.spares
    while spares.refill_pending:  # a zero delay: the next loop passes run it
        await asyncio.sleep(0)


async def test_spares_are_ready_at_start_with_their_settings_encoded(
    harness: AgentHarness,
) -> None:
    spares = harness.agent.csi.spares
    assert spares.ready == spare_connections.SPARES
    prepared = spares.take()
    assert prepared._prepared.data_to_send()[:3] != b""  # the SETTINGS frame, waiting to go


@pytest.mark.usefixtures("refill_at_once")
async def test_calls_each_on_a_new_connection_are_served_and_the_spares_refill(
    harness: AgentHarness,
) -> None:
    spares = harness.agent.csi.spares
    for number in range(spare_connections.SPARES + 2):  # more dials than spares, in sequence
        target = harness.target(volume=f"v{number}")
        await _caps_then_publish(harness.socket, target)
        assert (await asyncio.to_thread(os.listdir, target)) != []
        await _refilled(harness)
        assert spares.ready == spare_connections.SPARES


async def test_a_burst_beyond_the_spares_is_served(harness: AgentHarness) -> None:
    targets = [harness.target(volume=f"b{number}") for number in range(12)]
    await asyncio.gather(*(_caps_then_publish(harness.socket, target) for target in targets))
    assert len(harness.agent.table) == len(targets)


async def test_a_stopped_server_keeps_no_spares_and_no_refill(tmp_path: Path) -> None:
    inflight = InFlight()
    server = CsiServer(
        [IdentityService("secrets-store.csi.k8s.io", "v", inflight)],
        str(tmp_path / "csi.sock"),
        inflight,
    )
    await server.start()
    kubelet = Kubelet(server.path)
    try:
        await kubelet.call("Identity", "Probe", csi.ProbeRequest(), csi.ProbeResponse)
    finally:
        await kubelet.close()
    assert server.spares.refill_pending
    await server.stop(grace=1.0)
    assert server.spares.ready == 0
    assert not server.spares.refill_pending


async def test_a_publish_whose_connection_drops_is_undone(harness: AgentHarness) -> None:
    """Kubelet restarted mid-publish: its connection ends with no RST_STREAM, only the socket's
    close. The call is cancelled like a deadline: nothing mounted, written or recorded."""
    harness.provider.gate = asyncio.Event()
    target = harness.target()
    body = bytes(publish_request(target))
    _reader, writer = await asyncio.open_unix_connection(harness.socket)
    connection = H2Connection(H2Configuration(client_side=True, header_encoding="utf-8"))
    connection.initiate_connection()
    headers = [
        (":method", "POST"), (":scheme", "http"), (":path", "/csi.v1.Node/NodePublishVolume"),
        (":authority", "localhost"), ("content-type", "application/grpc"), ("te", "trailers"),
    ]  # fmt: skip
    connection.send_headers(1, headers)
    connection.send_data(1, prefix(len(body)) + body, end_stream=True)
    writer.write(connection.data_to_send())
    async with asyncio.timeout(5):
        while not harness.provider.in_flight:
            await asyncio.sleep(0.01)
    writer.close()
    await writer.wait_closed()
    async with asyncio.timeout(5):
        while harness.provider.in_flight or os.path.exists(target):
            await asyncio.sleep(0.02)
    assert mounts_under(target) == []
    assert harness.agent.table.get(target) is None
