"""A quiet watch whose server is gone without a word (no FIN, no RST: a node powered off, a
partition) over a real network link: TCP keepalive finds it within its bound, while the same
watch without keepalive would wait on (its read timeout is the server's timeoutSeconds plus a
margin, minutes). The scenario runs in network namespaces of its own (tests/support/dead_peer).
The watch's error, and the informer's warning, say that keepalive found it (``reason``
``keepalive``), not just that the connection closed. Over HTTPS the options reach the socket
under the TLS transport too."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from agent.k8s.api import KubeApi
from agent.k8s.connection import load_configuration
from agent.k8s.keepalive import KeepAlive
from agent.k8s.resources import PODS
from tests.fakes.kube_api import FakeKubeApi
from tests.support.dead_peer import SCALED, WAIT
from tests.support.mounts import is_root

ROOT = Path(__file__).resolve().parents[3]
TOOLS = ("unshare", "nsenter", "ip")


@pytest.mark.skipif(
    not is_root() or any(shutil.which(tool) is None for tool in TOOLS),
    reason="needs root and unshare, nsenter, ip (network namespaces and a veth pair)",
)
def test_keepalive_finds_a_peer_that_vanished_without_a_word() -> None:
    run = subprocess.run(
        ["unshare", "--net", sys.executable, "-m", "tests.support.dead_peer"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    if "skip" in result:
        pytest.skip(result["skip"])
    assert result["keepalive"] is not None, f"the dead peer went unnoticed for {WAIT} s"
    seconds, why, how = result["keepalive"]
    assert seconds <= SCALED.detects_within + 1.0, result
    assert why == KEEPALIVE_GAVE_UP and how == "keepalive", result
    assert result["without"] is None, f"without keepalive nothing notices within {WAIT} s"
    # The informer's warning says what happened, with the reason as a field of its own.
    seconds, error, reason = result["informer"]
    assert seconds <= SCALED.detects_within + 1.0, result
    assert (error, reason) == (KEEPALIVE_GAVE_UP, "keepalive"), result


KEEPALIVE_GAVE_UP = (
    "watch pods (all): the API server stopped answering TCP keepalive probes "
    "(the connection timed out)"
)


@pytest.mark.parametrize("kube_api_options", [{"tls": True}])
async def test_a_watch_over_https_has_keepalive_on_its_connection(kube_api: FakeKubeApi) -> None:
    """The socket under the TLS transport gets the options (the agent's defaults)."""
    api = KubeApi()
    api.connect(await load_configuration(str(kube_api.kubeconfig_path)))
    try:
        async with api.watch(PODS, str(kube_api.store.resource_version)) as stream:
            connection = stream._response.connection
            assert connection is not None and connection.transport is not None
            sock = connection.transport.get_extra_info("socket")
            options = [
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
            ]
    finally:
        await api.close()
    defaults = KeepAlive()
    assert options == [1, defaults.idle, defaults.interval, defaults.count]
