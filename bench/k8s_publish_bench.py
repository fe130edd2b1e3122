"""Publish benchmark in Kubernetes mode: the agent (subprocess, real CSI socket, real tmpfs as
root, in-process ``instant`` provider) against the fake API server over HTTP, driven by a grpcio
client as kubelet would.

Measures: startup to serving socket (and to /readyz), RSS after start, the first publish after
start, API calls per publish and per unpublish (reads and writes, from the fake's request log,
after the background writes settled), publish p50/p99 for 1, 10 and 50 objects, and RSS with
110 volumes mounted (a node's default pod limit). Run as root inside ``unshare -m``:
``unshare -m --propagation private python -m bench.k8s_publish_bench``. Its publishes are back
to back and its fake API shares the client's event loop; publish latency as kubelet calls
(paced, with floors, the status write timed at the API server) is
``bench/kubelet_bench.py --kubernetes``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from agent._proto.csi import v1 as csi
from bench.publish_bench import percentile, rss_mib
from tests.fakes.kube_api import FakeKubeApi, pod, secret_provider_class
from tests.support.kubelet import Kubelet, publish_request

NODE = "bench"
STATUSES = "secretproviderclasspodstatuses"


class KubeBench:
    def __init__(self, root: Path, kube: FakeKubeApi) -> None:
        self.root = root
        self.kube = kube
        self.serial = 0

    def new_volume(self, spc: str) -> tuple[str, csi.NodePublishVolumeRequest]:
        """A pod on this node (in the API, as kubelet would have it) and its volume target."""
        self.serial += 1
        uid = f"00000000-0000-0000-0000-{self.serial:012d}"
        self.kube.store.put(pod(f"pod-{self.serial}", node=NODE, uid=uid, spc=spc))
        parent = self.root / "pods" / uid / "volumes" / "kubernetes.io~csi" / "s"
        parent.mkdir(parents=True)
        target = str(parent / "mount")
        return target, publish_request(
            target, spc=spc, pod=f"pod-{self.serial}", uid=uid, volume_id=f"csi-{uid}"
        )

    async def settle(self, statuses: int, quiet: float = 0.3, timeout: float = 30.0) -> None:
        """Until the agent's status writes (behind the publish) have all arrived: the count
        matches and no status request came for ``quiet`` seconds (a create and the delete of a
        quick unpublish can both still be on their way while the count already matches)."""
        deadline = time.monotonic() + timeout
        while True:
            if time.monotonic() > deadline:
                raise RuntimeError("status writes did not settle")
            seen = len(self.kube.requests.filter(resource=STATUSES))
            await asyncio.sleep(quiet)
            still = len(self.kube.requests.filter(resource=STATUSES))
            if still == seen and len(self.kube.store.list(STATUSES)) == statuses:
                return

    def calls(self, mark: int) -> Counter[str]:
        return Counter(
            f"{'read' if r.method == 'GET' else 'write'} {r.verb} {r.resource}"
            for r in self.kube.requests.since(mark)
        )

    async def latency(self, kubelet: Kubelet, spc: str, samples: int) -> list[float]:
        timings = []
        for _ in range(samples):
            target, request = self.new_volume(spc)
            started = time.perf_counter()
            await kubelet.publish(request)
            timings.append((time.perf_counter() - started) * 1000)
            await kubelet.unpublish(request.volume_id, target)
        return timings


async def measure(root: Path, samples: int) -> dict[str, object]:
    async with FakeKubeApi.running(root / "kube") as kube:
        for count in (1, 10, 50):
            kube.store.put(
                secret_provider_class(
                    f"bench-{count}",
                    provider="instant",
                    parameters={"objectCount": str(count), "objectSize": "4096"},
                )
            )
        bench = KubeBench(root, kube)
        process, results = await start_agent(root, kube)
        try:
            results.update(await drive(bench, process.pid, samples))
        finally:
            process.terminate()
            await asyncio.to_thread(process.wait, 30)
    return results


async def start_agent(
    root: Path, kube: FakeKubeApi
) -> tuple[subprocess.Popen[bytes], dict[str, object]]:
    socket = root / "csi.sock"
    mode = "tmpfs" if os.geteuid() == 0 else "directory"
    command = [
        sys.executable, "-m", "tests.support.instant_agent", f"--endpoint=unix://{socket}",
        f"--kubeconfig={kube.kubeconfig_path}", f"--mount-mode={mode}", f"--nodeid={NODE}",
        "--agent-namespace=kube-system", "--metrics-addr=127.0.0.1:0",
        "--health-addr=127.0.0.1:0", f"--state-dir={root / 'state'}", "--log-format-json",
        f"--kubelet-root-dir={root}",
    ]  # fmt: skip
    log = (root / "agent.log").open("wb")
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=log)  # noqa: ASYNC220 (returns at once)
    while not socket.exists():
        if process.poll() is not None or time.perf_counter() - started > 30:
            raise RuntimeError("agent did not start")
        await asyncio.sleep(0.002)
    serving = time.perf_counter() - started
    return process, {
        "startup_to_serving_socket_s": round(serving, 3),
        "rss_after_start_mib": round(rss_mib(process.pid), 1),
    }


async def drive(bench: KubeBench, pid: int, samples: int) -> dict[str, object]:
    kubelet = Kubelet(str(bench.root / "csi.sock"))
    results: dict[str, object] = {}
    try:
        # Kubelet talks to the driver at registration (NodeGetInfo) long before a publish, so
        # its channel is connected; this client's too.
        await kubelet.call("Node", "NodeGetInfo", csi.NodeGetInfoRequest(), csi.NodeGetInfoResponse)
        first = await bench.latency(kubelet, "bench-10", 1)
        results["first_publish_after_start_ms"] = round(first[0], 2)
        await bench.latency(kubelet, "bench-10", 20)  # warm-up
        await bench.settle(0)
        results["api_calls"] = await api_calls(bench, kubelet, 50)
        for count in (1, 10, 50):
            timings = await bench.latency(kubelet, f"bench-{count}", samples)
            results[f"publish_{count}_objects_ms"] = {
                "p50": round(statistics.median(timings), 2),
                "p99": round(percentile(timings, 0.99), 2),
            }
        volumes = [bench.new_volume("bench-10") for _ in range(110)]
        await asyncio.gather(*(kubelet.publish(request) for _, request in volumes))
        await bench.settle(110)
        results["rss_with_110_volumes_mib"] = round(rss_mib(pid), 1)
        await asyncio.gather(*(kubelet.unpublish(r.volume_id, t) for t, r in volumes))
        await bench.settle(0)
    finally:
        await kubelet.close()
    return results


async def api_calls(bench: KubeBench, kubelet: Kubelet, volumes: int) -> dict[str, float]:
    """API requests per publish and per unpublish, counted at the fake once writes settled."""
    made = [bench.new_volume("bench-10") for _ in range(volumes)]
    mark = bench.kube.requests.mark()
    for _, request in made:
        await kubelet.publish(request)
    await bench.settle(volumes)
    published = bench.calls(mark)
    mark = bench.kube.requests.mark()
    for target, request in made:
        await kubelet.unpublish(request.volume_id, target)
    await bench.settle(0)
    unpublished = bench.calls(mark)
    return {
        **{f"per publish: {k}": v / volumes for k, v in sorted(published.items())},
        **{f"per unpublish: {k}": v / volumes for k, v in sorted(unpublished.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ssa-kbench-") as directory:
        results = asyncio.run(measure(Path(directory), args.samples))
        results["first_publish_inside_agent_ms"] = first_publish_inside(Path(directory))
    print(json.dumps(results, indent=2))


def first_publish_inside(root: Path) -> float:
    """The agent's own duration_ms of its first publish (without client and channel setup)."""
    for line in (root / "agent.log").read_text().splitlines():
        event = json.loads(line)
        if event.get("event") == "node_publish.completed":
            return float(event["duration_ms"])
    raise RuntimeError("no publish in the agent's log")


if __name__ == "__main__":
    main()
