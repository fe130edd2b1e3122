"""Publish benchmark: the agent (subprocess, real CSI socket, real tmpfs as root) driven by a
grpcio client as kubelet would, with the in-process ``instant`` provider
(``tests/support/instant_agent.py``).

Measures publish latency p50/p99 for 1, 10 and 50 objects of 4 KiB, the wall time of 100
concurrent publishes, and the agent's RSS after start and with 100 volumes mounted.
Run as root for tmpfs (``unshare -m`` keeps the machine's mount table clean):
``unshare -m --propagation private python -m bench.publish_bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import grpc

from agent._proto.csi import v1 as csi
from bench.instant import start_instant_agent
from tests.support.kubelet import Kubelet, publish_request

SPC = """\
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {{name: bench-{count}, namespace: default}}
spec:
  provider: instant
  parameters: {{objectCount: "{count}", objectSize: "4096"}}
"""


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class Bench:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.serial = 0
        self.sequential: set[str] = set()

    def target(self) -> str:
        """Like kubelet: the volume directory exists, its ``mount`` child is the agent's to make."""
        self.serial += 1
        volume = (
            self.root / "pods" / f"pod-{self.serial:05d}" / "volumes" / "kubernetes.io~csi" / "s"
        )
        volume.mkdir(parents=True)
        return str(volume / "mount")

    async def latency(self, kubelet: Kubelet, count: int, samples: int) -> list[float]:
        timings = []
        for _ in range(samples):
            target = self.target()
            self.sequential.add(target)
            request = publish_request(target, spc=f"bench-{count}", uid=target.split("/")[-5])
            started = time.perf_counter()
            await kubelet.publish(request)
            timings.append((time.perf_counter() - started) * 1000)
            await kubelet.unpublish("v", target)
        return timings

    async def concurrent(self, kubelet: Kubelet, volumes: int) -> tuple[float, list[str]]:
        targets = [self.target() for _ in range(volumes)]
        started = time.perf_counter()
        await asyncio.gather(
            *(
                kubelet.publish(publish_request(t, spc="bench-10", uid=t.split("/")[-5]))
                for t in targets
            )
        )
        return time.perf_counter() - started, targets


async def measure(bench: Bench, pid: int, socket: str, samples: int) -> dict[str, object]:
    kubelet = Kubelet(socket)
    results: dict[str, object] = {"rss_after_start_mib": round(rss_mib(pid), 1)}
    try:
        first = await bench.latency(kubelet, 10, 1)  # pays for lazy imports and the first mount
        results["first_publish_after_start_ms"] = round(first[0], 2)
        await bench.latency(kubelet, 10, 20)  # warm-up
        bench.sequential.clear()
        results["probe_round_trip_ms"] = await probe_round_trip(kubelet)
        for count in (1, 10, 50):
            timings = await bench.latency(kubelet, count, samples)
            results[f"publish_{count}_objects_ms"] = {
                "p50": round(statistics.median(timings), 2),
                "p99": round(percentile(timings, 0.99), 2),
            }
        wall, targets = await bench.concurrent(kubelet, 100)
        results["concurrent_100_publishes_s"] = round(wall, 3)
        results["rss_with_100_volumes_mib"] = round(rss_mib(pid), 1)
        await asyncio.gather(*(kubelet.unpublish("v", t) for t in targets))
    finally:
        await kubelet.close()
    return results


def start_agent(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    manifests = {f"bench-{count}.yaml": SPC.format(count=count) for count in (1, 10, 50)}
    return start_instant_agent(root, manifests)


def agent_side_latency(log: Path, sequential: set[str]) -> dict[str, dict[str, float]]:
    """The agent's own duration_ms of the sequential first publishes, per SPC (object count):
    what the agent spends, without the client and the gRPC framing."""
    timings: dict[str, list[float]] = {}
    for line in log.read_text().splitlines():
        event = json.loads(line)
        if event.get("event") == "node_publish.completed" and event["target_path"] in sequential:
            timings.setdefault(event["spc"], []).append(float(event["duration_ms"]))
    return {
        spc: {"p50": round(statistics.median(t), 2), "p99": round(percentile(t, 0.99), 2)}
        for spc, t in sorted(timings.items())
    }


async def probe_round_trip(kubelet: Kubelet, samples: int = 300) -> float:
    """The floor: one empty CSI call (Probe) through the same client and server stack."""
    timings = []
    for _ in range(samples):
        started = time.perf_counter()
        await kubelet.call("Identity", "Probe", csi.ProbeRequest(), csi.ProbeResponse)
        timings.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(timings), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ssa-bench-") as directory:
        root = Path(directory)
        process, socket = start_agent(root)
        bench = Bench(root)
        try:
            results = asyncio.run(measure(bench, process.pid, socket, args.samples))
        finally:
            process.terminate()
            process.wait(timeout=30)
        results["agent_side_publish_ms"] = agent_side_latency(root / "agent.log", bench.sequential)
    results["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "mount_mode": "tmpfs" if os.geteuid() == 0 else "directory",
        "grpcio": grpc.__version__,
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
