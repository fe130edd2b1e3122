"""Five providers in one agent: RSS as each provider loads, and first-publish latency per
provider when all five are cold at once, with the event loop's stalls meanwhile.

The five stores of ``tests/support/five_stores.py`` run in this process (OpenBao and moto as
subprocesses behind relays, the Azure and GCP fakes, the grpcio plugin); the agent runs as a
subprocess (``bench/traced_agent.py``: the real agent plus a loop-stall tracer), standalone,
tmpfs as root, driven by a grpcio kubelet. Every measurement starts a new agent, so each
provider is cold (not imported, no connection, no token):

- ``ladder``: one pod publishes its five volumes one after the other; RSS after start and after
  each provider's first volume (each step is what that provider adds to the ones before);
- ``alone``: a new agent publishes one store's volume; its latency at the client;
- ``together``: a new agent publishes all five volumes of one pod at once; each one's latency at
  the client, and the loop stalls (ticks late by more than 5 ms) the tracer saw meanwhile.

``--baseline DIR`` runs the same measurements against the agent of another checkout (e.g. a
``git worktree`` of an older commit), interleaved round by round with this one, so the
machine's drift hits both alike. Run:
``unshare -m --propagation private python -m bench.five_providers_bench --rounds 5``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.instant import hide_dev_packages
from bench.publish_bench import rss_mib
from tests.e2e.conftest import AgentProcess
from tests.support.five_stores import STORES, FiveStores, five_stores
from tests.support.jwt_signer import JwtSigner
from tests.support.kubelet import Kubelet
from tests.support.moto import moto_process
from tests.support.mounts import force_unmount_under
from tests.support.openbao import dev_server
from tests.support.pki import server_tls

REPO = Path(__file__).resolve().parents[1]
TRACER = REPO / "bench" / "traced_agent.py"


class TracedAgent(AgentProcess):
    """The agent of checkout ``repo``, run through the tracer of this one."""

    def __init__(self, root: Path, repo: Path, world: FiveStores, hidden: str) -> None:
        super().__init__(root, [f"--provider-volume={world.plugin_dir}"])
        self.repo = repo
        self.trace_file = root / "trace.json"
        self.trace: list[dict[str, Any]] = []  # the stalls, once the agent has exited
        self.env = {
            **os.environ,
            **world.env,
            "PYTHONPATH": os.pathsep.join(p for p in (str(repo), hidden) if p),
            "LOOP_TRACE_FILE": str(self.trace_file),
        }
        (root / "five.yaml").write_text(world.manifests(), encoding="utf-8")

    def command(self) -> list[str]:
        return [sys.executable, str(TRACER), *super().command()[4:]]  # without "-m agent serve"

    def stalls(self) -> list[dict[str, Any]]:
        return json.loads(self.trace_file.read_text()) if self.trace_file.exists() else []


HIDDEN = {"dir": ""}  # a PYTHONPATH entry that hides the dev venv's extra packages, if set


@contextlib.contextmanager
def agent(repo: Path, world: FiveStores) -> Iterator[TracedAgent]:
    root = Path(tempfile.mkdtemp(prefix="ssa-5b-", dir="/tmp"))
    process = TracedAgent(root, repo, world, HIDDEN["dir"])
    try:
        process.start()
        process.wait_ready()
        yield process
    finally:
        if process.process is not None:
            process.terminate()
            process.trace = process.stalls()
        force_unmount_under(str(root))
        shutil.rmtree(root, ignore_errors=True)


async def publish(
    node: TracedAgent, world: FiveStores, stores: tuple[str, ...]
) -> dict[str, float]:
    """Publishes ``stores``' volumes of one new pod at once; ms per volume at the client."""
    uid = f"pod-{time.monotonic_ns()}"
    kubelet = Kubelet(str(node.socket))
    timings: dict[str, float] = {}

    async def one(store: str) -> None:
        target = str(node.target(uid, volume=store))
        started = time.perf_counter()
        await kubelet.publish(world.publish(store, target, uid))
        timings[store] = round((time.perf_counter() - started) * 1000, 1)

    try:
        await asyncio.gather(*(one(store) for store in stores))
        for store in stores:
            await kubelet.unpublish(f"csi-{store}", str(node.target(uid, volume=store)))
    finally:
        await kubelet.close()
    return timings


async def ladder(repo: Path, world: FiveStores) -> dict[str, float]:
    with agent(repo, world) as node:
        rss = {"start": round(rss_mib(node.pid), 1)}
        uid = f"pod-{time.monotonic_ns()}"
        kubelet = Kubelet(str(node.socket))
        try:
            for store in STORES:
                target = str(node.target(uid, volume=store))
                await kubelet.publish(world.publish(store, target, uid))
                rss[store] = round(rss_mib(node.pid), 1)
        finally:
            await kubelet.close()
    return rss


async def alone(repo: Path, world: FiveStores, store: str) -> tuple[float, float]:
    """(ms of the first publish, MiB it added to the agent's RSS) for ``store`` alone."""
    with agent(repo, world) as node:
        before = rss_mib(node.pid)
        ms = (await publish(node, world, (store,)))[store]
        return ms, round(rss_mib(node.pid) - before, 1)


async def together(repo: Path, world: FiveStores) -> dict[str, Any]:
    with agent(repo, world) as node:
        began = time.time()
        timings = await publish(node, world, STORES)
        ended = time.time()
        rss = round(rss_mib(node.pid), 1)
    # The trace is written when the agent exits; only the stalls during the publishes count.
    stalls = [s for s in node.trace if began <= s["started"] <= ended]
    return {"ms": timings, "rss_all_five_mib": rss, "stalls": stalls}


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "p50": round(statistics.median(samples), 1),
        "min": min(samples),
        "max": max(samples),
    }


def stall_summary(runs: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """Per run: the longest stall and the sum of stalls, in ms (medians over runs)."""
    longest = [max((s["duration_ms"] for s in run), default=0.0) for run in runs]
    total = [sum(s["duration_ms"] for s in run) for run in runs]
    return {"longest_ms": summary(longest), "total_ms": summary(total)}


async def measure(repos: dict[str, Path], world: FiveStores, rounds: int) -> dict[str, Any]:
    results: dict[str, Any] = {
        label: {
            "ladder": [],
            "alone": {s: [] for s in STORES},
            "alone_mib": {s: [] for s in STORES},
            "together": [],
        }
        for label in repos
    }
    for number in range(rounds):
        order = list(repos.items())
        if number % 2:
            order.reverse()  # A B, B A, ...: drift hits both alike
        for label, repo in order:
            mine = results[label]
            if number < 2:
                mine["ladder"].append(await ladder(repo, world))
            for store in STORES:
                ms, mib = await alone(repo, world, store)
                mine["alone"][store].append(ms)
                mine["alone_mib"][store].append(mib)
            mine["together"].append(await together(repo, world))
    return {label: condense(found) for label, found in results.items()}


def condense(found: dict[str, Any]) -> dict[str, Any]:
    together_runs = found["together"]
    return {
        "rss_ladder_mib": found["ladder"],
        "first_publish_alone_ms": {s: summary(v) for s, v in found["alone"].items()},
        "rss_added_by_first_volume_alone_mib": {
            s: summary(v) for s, v in found["alone_mib"].items()
        },
        "first_publish_all_five_at_once_ms": {
            s: summary([run["ms"][s] for run in together_runs]) for s in STORES
        },
        "rss_all_five_mib": summary([run["rss_all_five_mib"] for run in together_runs]),
        "loop_stalls_all_five_at_once": stall_summary([run["stalls"] for run in together_runs]),
        "stalls_of_last_run": together_runs[-1]["stalls"],
    }


async def main_async(repos: dict[str, Path], rounds: int, hide: bool) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="ssa-5b-world-"))
    try:
        signer = JwtSigner()
        if hide:
            HIDDEN["dir"] = hide_dev_packages(work / "hidden")
        tls = server_tls(work / "tls", ("vault.localhost", "*.vault.localhost", "login.localhost"))
        with dev_server() as openbao, moto_process() as moto:
            async with five_stores(
                openbao=openbao, moto=moto, signer=signer, azure_tls=tls, directory=work
            ) as world:
                return await measure(repos, world, rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", help="another checkout whose agent to compare")
    parser.add_argument(
        "--with-dev-packages", action="store_true", help="let the agent see pydantic (dev venv)"
    )
    args = parser.parse_args()
    repos = {"this": REPO}
    if args.baseline:
        repos["baseline"] = Path(args.baseline).resolve()
    results = asyncio.run(main_async(repos, args.rounds, not args.with_dev_packages))
    results["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
