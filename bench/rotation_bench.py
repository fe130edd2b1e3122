"""Rotation benchmark: a full node's worth of volumes rotated cycle after cycle.

The real agent in-process (standalone mode, real CSI socket driven by grpcio, real tmpfs as
root, the real atomic writer, status files and metadata), with rotation on and a manual clock:
each cycle moves the clock past the interval and waits for the scheduler to settle, so a
thousand cycles run back to back. 110 volumes (pods) of 10 objects each, spread over 20
service accounts (identities) of one SecretProviderClass; the provider answers after 50 ms.

Per cycle it reports provider fetches, wall time and CPU seconds, for unchanged content (the
steady state: nothing written) and for content that changes every cycle (every volume
rewritten); RSS is sampled across the unchanged cycles. ``--model upstream`` runs the same
load the way upstream rotates: one fetch per pod (no coalescing), one at a time (≤v1.5's
single worker); ``--model per-pod`` one fetch per pod with the same concurrency as the agent
(v1.6's model, where each pod's republish fetches on its own).

``unshare -m --propagation private python -m bench.rotation_bench``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from agent.app import build_agent
from agent.config import Settings
from agent.lifecycle import Agent
from agent.logs import configure_logging
from agent.model import (
    FETCH_PER_POD_ANNOTATION,
    MountResult,
    ObjectVersion,
    ProviderRequest,
    SecretFile,
)
from agent.providers.registry import ProviderRegistry
from tests.support.clock import ManualClock
from tests.support.kubelet import Kubelet, publish_request

INTERVAL = 120.0
SPC = "bench"


class SlowProvider:
    """Answers after ``latency`` seconds with ``objects`` files of ``size`` bytes whose
    content changes only when ``revision`` does."""

    name = "slow"

    def __init__(self, latency: float, objects: int, size: int) -> None:
        self.latency, self.objects, self.size = latency, objects, size
        self.revision = 0
        self.calls = 0
        self._cached: tuple[int, MountResult] | None = None

    async def mount(self, request: ProviderRequest) -> MountResult:
        self.calls += 1
        await asyncio.sleep(self.latency)
        if self._cached is None or self._cached[0] != self.revision:
            files = tuple(
                SecretFile(
                    f"secret-{i:02d}", 0o644, f"{self.revision:08d}".encode() * (self.size // 8)
                )
                for i in range(self.objects)
            )
            versions = tuple(
                ObjectVersion(f"secret-{i:02d}", str(self.revision)) for i in range(self.objects)
            )
            self._cached = (self.revision, MountResult(files, versions))
        return self._cached[1]


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def spc_manifest(per_pod: bool) -> str:
    metadata: dict[str, Any] = {"name": SPC, "namespace": "default"}
    if per_pod:
        metadata["annotations"] = {FETCH_PER_POD_ANNOTATION: "true"}
    document = {
        "apiVersion": "secrets-store.csi.x-k8s.io/v1",
        "kind": "SecretProviderClass",
        "metadata": metadata,
        "spec": {"provider": "slow", "parameters": {"objects": "bench"}},
    }
    return yaml.safe_dump(document)


async def start(
    root: Path, args: argparse.Namespace, provider: SlowProvider
) -> tuple[Agent, ManualClock]:
    (root / "spc").mkdir()
    (root / "spc" / "bench.yaml").write_text(spc_manifest(args.model != "agent"))
    settings = Settings(
        endpoint=f"unix://{root}/csi.sock",
        node_id="bench",
        metrics_addr="127.0.0.1:0",
        health_addr="127.0.0.1:0",
        standalone_dir=str(root / "spc"),
        mount_mode="tmpfs" if os.geteuid() == 0 else "directory",
        tmpfs_size=1024 * 1024,
        state_dir=str(root / "state"),
        kubelet_root_dir=str(root),
        enable_secret_rotation=True,
        rotation_poll_interval=INTERVAL,
        rotation_concurrency=1 if args.model == "upstream" else args.concurrency,
    )
    registry = ProviderRegistry(
        timeout=settings.provider_timeout,
        version_key=b"bench" * 8,
        factories={"slow": lambda _context: provider},
        load_entry_points=False,
    )
    clock = ManualClock()
    agent = build_agent(settings, registry=registry, clock=clock)
    await agent.start()
    return agent, clock


async def publish_all(root: Path, kubelet: Kubelet, args: argparse.Namespace) -> list[str]:
    targets = []
    for i in range(args.volumes):
        uid = f"00000000-0000-0000-0000-{i:012d}"
        volume = root / "pods" / uid / "volumes" / "kubernetes.io~csi" / "secrets"
        volume.mkdir(parents=True)
        targets.append(str(volume / "mount"))
    for start_at in range(0, len(targets), 20):
        await asyncio.gather(
            *(
                kubelet.publish(
                    publish_request(
                        target,
                        spc=SPC,
                        pod=f"pod-{i}",
                        uid=target.split("/")[-5],
                        service_account=f"sa-{i % args.identities}",
                        volume_id=f"v-{i}",
                    )
                )
                for i, target in enumerate(targets[start_at : start_at + 20], start_at)
            )
        )
    return targets


async def cycle(
    agent: Agent, clock: ManualClock, provider: SlowProvider
) -> tuple[int, float, float]:
    """One rotation of every volume: (provider calls, wall s, CPU s)."""
    assert agent.rotation is not None
    calls = provider.calls
    wall, cpu = time.perf_counter(), time.process_time()
    clock.advance(INTERVAL * 1.11)  # past the interval and its jitter
    await agent.rotation.settle()
    return provider.calls - calls, time.perf_counter() - wall, time.process_time() - cpu


def assert_content(targets: list[str], revision: int) -> None:
    """Every volume holds the last revision: the cycles really rotated the files."""
    for target in targets:
        assert Path(target, "secret-00").read_bytes()[:8] == f"{revision:08d}".encode()


def summary(samples: list[float], digits: int = 3) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50": round(statistics.median(ordered), digits),
        "p99": round(ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))], digits),
        "max": round(ordered[-1], digits),
    }


async def measure(root: Path, args: argparse.Namespace) -> dict[str, object]:
    provider = SlowProvider(args.latency, args.objects, args.size)
    agent, clock = await start(root, args, provider)
    kubelet = Kubelet(agent.settings.socket_path)
    results: dict[str, object] = {}
    try:
        targets = await publish_all(root, kubelet, args)
        results["publish_fetches"] = provider.calls
        gc.collect()
        rss: list[tuple[int, float]] = [(0, round(rss_mib(), 1))]
        fetches, walls, cpus = [], [], []
        for n in range(1, args.cycles + 1):
            calls, wall, cpu = await cycle(agent, clock, provider)
            fetches.append(calls)
            walls.append(wall)
            cpus.append(cpu)
            if n % max(args.cycles // 10, 1) == 0:
                rss.append((n, round(rss_mib(), 1)))
        results["unchanged"] = {
            "cycles": args.cycles,
            "fetches_per_cycle": sorted(set(fetches)),
            "wall_s": summary(walls),
            "cpu_s": summary(cpus, 4),
            "rss_mib_by_cycle": rss,
        }
        fetches, walls, cpus = [], [], []
        for _ in range(args.changed_cycles):
            provider.revision += 1
            calls, wall, cpu = await cycle(agent, clock, provider)
            fetches.append(calls)
            walls.append(wall)
            cpus.append(cpu)
        results["changed"] = {
            "cycles": args.changed_cycles,
            "fetches_per_cycle": sorted(set(fetches)),
            "wall_s": summary(walls),
            "cpu_s": summary(cpus, 4),
        }
        assert_content(targets, provider.revision)
        results["rss_after_changed_mib"] = round(rss_mib(), 1)
        for target, i in zip(targets, range(len(targets)), strict=True):
            await kubelet.unpublish(f"v-{i}", target)
    finally:
        await kubelet.close()
        await agent.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", choices=("agent", "per-pod", "upstream"), default="agent")
    parser.add_argument("--volumes", type=int, default=110)
    parser.add_argument("--objects", type=int, default=10)
    parser.add_argument("--size", type=int, default=1024, help="bytes per object")
    parser.add_argument("--identities", type=int, default=20)
    parser.add_argument("--latency", type=float, default=0.05, help="provider latency, s")
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--changed-cycles", type=int, default=50)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="ssa-rot-", dir="/tmp"))
    try:
        # The agent's JSON log lines, as in production, to a file (stdout is for the results).
        with (root / "agent.log").open("w") as log:
            configure_logging(json=True, verbosity=0, stream=log)
            results = asyncio.run(measure(root, args))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    results["load"] = dict(vars(args))
    results["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "mount_mode": "tmpfs" if os.geteuid() == 0 else "directory",
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
