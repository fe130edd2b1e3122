"""Memory benchmark: the agent's RSS over many publish/unpublish cycles on new targets.

Starts the real agent as a subprocess (``tests/support/instant_agent.py``: the normal agent plus
an in-process provider that answers at once), and drives its CSI socket with a grpcio client as
kubelet would: for each cycle a new pod UID, its volume directory made as kubelet makes it, one
NodePublishVolume (tmpfs mount, atomic write, metadata, status), one NodeUnpublishVolume, and the
volume directory removed again. RSS (``VmRSS``) is sampled after every ``--every`` cycles;
``python -X importtime`` aside, nothing else runs in the agent. Run as root for tmpfs:
``unshare -m --propagation private python -m bench.memory_bench --cycles 100000``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.instant import start_instant_agent
from tests.support.kubelet import Kubelet, publish_request

SPC = """\
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: bench, namespace: default}
spec:
  provider: instant
  parameters: {objectCount: "10", objectSize: "4096"}
"""


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def cycle(kubelet: Kubelet, root: Path) -> None:
    uid = str(uuid.uuid4())
    volume = root / "pods" / uid / "volumes" / "kubernetes.io~csi" / "secrets"
    volume.mkdir(parents=True)
    target = str(volume / "mount")
    await kubelet.publish(publish_request(target, spc="bench", uid=uid, volume_id=f"csi-{uid}"))
    await kubelet.unpublish(f"csi-{uid}", target)
    shutil.rmtree(root / "pods" / uid)  # kubelet removes the pod directory after the pod


async def run(root: Path, pid: int, socket: str, cycles: int, every: int) -> list[dict[str, float]]:
    kubelet = Kubelet(socket)
    samples = [{"cycles": 0, "rss_kib": rss_kib(pid), "seconds": 0.0}]
    started = time.monotonic()
    try:
        for done in range(1, cycles + 1):
            await cycle(kubelet, root)
            if done % every == 0:
                samples.append(
                    {
                        "cycles": done,
                        "rss_kib": rss_kib(pid),
                        "seconds": round(time.monotonic() - started, 1),
                    }
                )
                print(json.dumps(samples[-1]), file=sys.stderr, flush=True)
    finally:
        await kubelet.close()
    return samples


def summary(samples: list[dict[str, float]], warmup: int) -> dict[str, float]:
    """Growth per cycle after the warm-up (caches, lazy imports, allocator arenas filling)."""
    steady = [s for s in samples if s["cycles"] >= warmup]
    first, last = steady[0], steady[-1]
    cycles = last["cycles"] - first["cycles"]
    return {
        "rss_after_start_mib": round(samples[0]["rss_kib"] / 1024, 1),
        "rss_after_warmup_mib": round(first["rss_kib"] / 1024, 1),
        "rss_at_end_mib": round(last["rss_kib"] / 1024, 1),
        "max_rss_after_warmup_mib": round(max(s["rss_kib"] for s in steady) / 1024, 1),
        "growth_per_cycle_after_warmup_bytes": round(
            (last["rss_kib"] - first["rss_kib"]) * 1024 / cycles, 3
        )
        if cycles
        else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=100_000)
    parser.add_argument("--every", type=int, default=5_000, help="sample RSS every N cycles")
    parser.add_argument("--warmup", type=int, default=10_000, help="cycles before growth counts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ssa-mem-") as directory:
        root = Path(directory)
        process, socket = start_instant_agent(root, {"bench.yaml": SPC}, log=False)
        try:
            samples = asyncio.run(run(root, process.pid, socket, args.cycles, args.every))
        finally:
            process.terminate()
            process.wait(timeout=30)
    print(
        json.dumps(
            {
                "summary": summary(samples, min(args.warmup, args.cycles)),
                "samples": samples,
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "kernel": platform.release(),
                    "mount_mode": "tmpfs" if os.geteuid() == 0 else "directory",
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
