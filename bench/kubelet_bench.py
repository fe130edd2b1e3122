"""Publish latency as kubelet sees it: paced calls and back-to-back ones, in-process and through
a plugin socket, the first publish after start, each beside its floor measured in the same run.

Kubelet publishes a pod's volume when the pod starts, not in a tight loop: between two calls
the agent sits idle, its threads asleep, and every thread hop of a publish then pays a
wake-up. So the main figures are *paced* (``--gap``, default 100 ms of idle before each timed
call); *back-to-back* bursts (``--burst`` calls, the first of each not counted) show the same
work with warm threads. The cases and floors are in ``bench/kubelet_cases.py``.

Processes, as on a node: the agent (``bench/instant_agent.py``: the real agent plus the
in-process ``instant`` provider; standalone mode, tmpfs as root), the tests' grpcio fake plugin
(``bench/fake_plugin.py``) on ``<provider-volume>/fake.sock``, an OpenBao dev server, and this
process as kubelet (grpcio) and as the floors' client. ``--baseline DIR`` (a directory with
another checkout's ``agent`` package, e.g. ``git archive <commit> agent | tar -x -C DIR``)
runs that agent beside this one, calls alternating one by one, so both see the same machine.

``unshare -m --propagation private python -m bench.kubelet_bench --rounds 100``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent._proto.csi import v1 as csi
from bench.instant import hide_dev_packages
from bench.kubelet_cases import (
    INPROCESS_OBJECTS,
    INPROCESS_SIZE,
    PLUGIN_NAME,
    PLUGIN_OBJECTS,
    PluginFloor,
    TmpfsFloor,
    VaultCase,
    VaultFloor,
    manifests,
    request_for,
)
from bench.publish_bench import percentile
from tests.support.kubelet import Kubelet
from tests.support.mounts import force_unmount_under
from tests.support.openbao import dev_server

REPO = Path(__file__).resolve().parents[1]
# BENCH_AGENT_SCRIPT: another entry point (e.g. one that times the publish steps).
AGENT_SCRIPT = Path(
    os.environ.get("BENCH_AGENT_SCRIPT") or REPO / "bench" / "instant_agent.py"
).resolve()
Samples = dict[str, list[float]]


@dataclass
class Node:
    """One running agent of one checkout."""

    label: str
    root: Path
    process: subprocess.Popen[bytes]
    socket: str
    start_ms: float  # exec to the CSI socket accepting a connection
    kubelet: Kubelet
    serial: int = 0
    cases: dict[str, str] = field(default_factory=dict)  # target path -> sample key

    def target(self) -> tuple[str, str]:
        """A new pod's volume directory, made as kubelet makes it; (target, pod uid)."""
        self.serial += 1
        uid = str(uuid.UUID(int=self.serial))
        volume = self.root / "pods" / uid / "volumes" / "kubernetes.io~csi" / "secrets"
        volume.mkdir(parents=True)
        return str(volume / "mount"), uid


@dataclass
class World:
    work: Path
    plugin_dir: Path
    checkouts: dict[str, Path]  # label -> directory holding its ``agent`` package
    hidden: str
    vault: VaultCase | None
    gap: float
    cases: tuple[str, ...]


def _accepts(path: str) -> bool:
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


async def start_node(world: World, label: str, index: int) -> Node:
    root = world.work / f"{label}-{index}"
    (root / "spc").mkdir(parents=True)
    for name, text in manifests(world.vault).items():
        (root / "spc" / name).write_text(text)
    path = str(root / "csi.sock")
    paths = [str(world.checkouts[label]), str(REPO), world.hidden]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    command = [
        sys.executable, str(AGENT_SCRIPT), f"--endpoint=unix://{path}",
        f"--standalone-dir={root / 'spc'}", "--nodeid=bench", "--log-format-json",
        f"--mount-mode={'tmpfs' if os.geteuid() == 0 else 'directory'}",
        "--metrics-addr=127.0.0.1:0", "--health-addr=127.0.0.1:0",
        f"--state-dir={root / 'state'}", f"--kubelet-root-dir={root}",
        f"--provider-volume={world.plugin_dir}",
    ]  # fmt: skip
    started = time.perf_counter()
    process = _spawn(command, env, root)
    deadline = started + 30
    while not _accepts(path):
        if process.poll() is not None or time.perf_counter() > deadline:
            raise RuntimeError(f"agent {label} did not start; see {root / 'agent.log'}")
        await asyncio.sleep(0.001)
    start_ms = (time.perf_counter() - started) * 1000
    kubelet = Kubelet(path)
    # Kubelet's registration (node-driver-registrar) precedes any publish.
    await kubelet.call("Node", "NodeGetInfo", csi.NodeGetInfoRequest(), csi.NodeGetInfoResponse)
    return Node(label, root, process, path, start_ms, kubelet)


def _spawn(command: list[str], env: dict[str, str], root: Path) -> subprocess.Popen[bytes]:
    with (root / "agent.log").open("wb") as log:
        return subprocess.Popen(command, stdout=log, env=env, cwd=root)


async def stop_node(node: Node) -> None:
    await node.kubelet.close()
    node.process.terminate()
    node.process.wait(timeout=30)
    force_unmount_under(str(node.root))


async def publish(node: Node, world: World, case: str, key: str) -> float:
    target, uid = node.target()
    request = request_for(case, target, uid, world.vault)
    started = time.perf_counter()
    await node.kubelet.publish(request)
    elapsed = (time.perf_counter() - started) * 1000
    node.cases[target] = key
    await node.kubelet.unpublish(request.volume_id, target)
    return elapsed


async def probe(node: Node) -> float:
    started = time.perf_counter()
    await node.kubelet.call("Identity", "Probe", csi.ProbeRequest(), csi.ProbeResponse)
    return (time.perf_counter() - started) * 1000


class Floors:
    def __init__(self, world: World, plugin: PluginFloor, vault: VaultFloor | None) -> None:
        self.world = world
        self.tmpfs = TmpfsFloor(world.work / "floor")
        self.plugin = plugin
        self.vault = vault

    def calls(self, case: str) -> dict[str, Callable[[], Awaitable[float]]]:
        """The floors beside ``case``, by name."""
        found: dict[str, Callable[[], Awaitable[float]]] = {}
        if case == "inprocess":
            found["tmpfs_write"] = self._sync(self.tmpfs.write, INPROCESS_OBJECTS, INPROCESS_SIZE)
        elif case == "plugin":
            found["tmpfs_write"] = self._sync(self.tmpfs.write, len(PLUGIN_OBJECTS), 16)
            found["plugin_rpc"] = self.plugin.call
        elif case == "vault" and self.vault is not None:
            found["tmpfs_write"] = self._sync(self.tmpfs.write, 2, 32)
            found["vault_bare"] = self.vault.call
        return found

    @staticmethod
    def _sync(func: Callable[..., float], *args: Any) -> Callable[[], Awaitable[float]]:
        async def call() -> float:
            return func(*args)

        return call


async def steady(
    nodes: list[Node], world: World, floors: Floors, rounds: int, burst: int
) -> dict[str, Samples]:
    """Paced rounds, then back-to-back bursts; agents alternate first, call by call."""
    found: dict[str, Samples] = {node.label: {} for node in nodes}
    found["floor"] = {}

    def add(owner: str, key: str, value: float) -> None:
        found[owner].setdefault(key, []).append(value)

    for pacing, gap, repeat in (("paced", world.gap, 1), ("b2b", 0.0, burst)):
        for round_ in range(rounds if pacing == "paced" else max(rounds // burst, 3)):
            order = nodes if round_ % 2 == 0 else nodes[::-1]
            for case in world.cases:
                for node in order:
                    key = f"{case}.{pacing}"
                    for index in range(repeat):
                        await asyncio.sleep(gap)
                        value = await publish(node, world, case, key)
                        if pacing == "paced" or index:
                            add(node.label, key, value)
                    for index in range(repeat):
                        await asyncio.sleep(gap)
                        value = await probe(node)
                        if pacing == "paced" or index:
                            add(node.label, f"probe.{pacing}", value)
                for name, call in floors.calls(case).items():
                    for index in range(repeat):
                        await asyncio.sleep(gap)
                        value = await call()
                        if pacing == "paced" or index:
                            add("floor", f"{case}.{name}.{pacing}", value)
    return found


async def first_publishes(world: World, starts: int) -> dict[str, Samples]:
    """A new agent per sample: exec to serving, then the first publish right away, and a second
    one after the gap."""
    found: dict[str, Samples] = {label: {} for label in world.checkouts}
    labels = list(world.checkouts)
    for index in range(starts):
        for case in world.cases:
            order = labels if index % 2 == 0 else labels[::-1]
            for label in order:
                node = await start_node(world, label, index * 10 + world.cases.index(case))
                try:
                    first = await publish(node, world, case, f"{case}.first")
                    await asyncio.sleep(world.gap)
                    second = await publish(node, world, case, f"{case}.second")
                finally:
                    await stop_node(node)
                mine = found[label]
                mine.setdefault("start_to_serving", []).append(node.start_ms)
                mine.setdefault(f"{case}.first", []).append(first)
                mine.setdefault(f"{case}.second_after_gap", []).append(second)
                for key, value in agent_side(node).items():
                    mine.setdefault(f"{key}.agent_side", []).extend(value)
    return found


def agent_side(node: Node) -> Samples:
    """The agent's own ``duration_ms`` per sample key, from its log."""
    found: Samples = {}
    for line in (node.root / "agent.log").read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "node_publish.completed":
            key = node.cases.get(event.get("target_path", ""))
            if key is not None:
                found.setdefault(key, []).append(float(event["duration_ms"]))
    return found


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "p50": round(statistics.median(samples), 2),
        "p99": round(percentile(samples, 0.99), 2),
        "n": len(samples),
    }


async def run(world: World, rounds: int, burst: int, starts: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    async with AsyncExitStack() as stack:
        plugin = PluginFloor(str(world.plugin_dir / f"{PLUGIN_NAME}.sock"))
        stack.push_async_callback(plugin.close)
        vault = VaultFloor(world.vault) if world.vault is not None else None
        if vault is not None:
            stack.push_async_callback(vault.close)
        floors = Floors(world, plugin, vault)
        nodes = []
        for label in world.checkouts:
            node = await start_node(world, label, 999)
            stack.push_async_callback(stop_node, node)
            nodes.append(node)
        for node in nodes:  # warm-up, not counted
            for case in world.cases:
                for _ in range(10):
                    await publish(node, world, case, "warmup")
        measured = await steady(nodes, world, floors, rounds, burst)
        for node in nodes:
            for key, values in agent_side(node).items():
                if key != "warmup":
                    measured[node.label].setdefault(f"{key}.agent_side", []).extend(values)
    results["steady"] = {
        owner: {key: summary(values) for key, values in sorted(samples.items())}
        for owner, samples in measured.items()
    }
    if starts:
        firsts = await first_publishes(world, starts)
        results["first"] = {
            label: {key: summary(values) for key, values in sorted(samples.items())}
            for label, samples in firsts.items()
        }
    return results


def plugin_process(directory: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.fake_plugin", str(directory / f"{PLUGIN_NAME}.sock")],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert process.stdout is not None
    if process.stdout.readline().strip() != "ready":
        process.kill()
        raise RuntimeError("the fake plugin did not start")
    return process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gap", type=float, default=0.1, help="idle seconds before a paced call")
    parser.add_argument("--rounds", type=int, default=100, help="paced samples per case")
    parser.add_argument("--burst", type=int, default=10, help="calls per back-to-back burst")
    parser.add_argument("--starts", type=int, default=5, help="new agents per first-publish case")
    parser.add_argument("--baseline", help="a directory holding another checkout's agent package")
    parser.add_argument("--candidate", help="measure this directory's agent package as 'this'")
    parser.add_argument(
        "--cases", default="inprocess,plugin,vault", help="comma-separated: inprocess,plugin,vault"
    )
    parser.add_argument(
        "--with-dev-packages", action="store_true", help="let the agent see pydantic (dev venv)"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ssa-kb-", dir="/tmp"))
    checkouts = {"this": Path(args.candidate).resolve() if args.candidate else REPO}
    if args.baseline:
        checkouts["baseline"] = Path(args.baseline).resolve()
    hidden = "" if args.with_dev_packages else hide_dev_packages(work / "hidden")
    try:
        with ExitStack() as stack:
            plugin_dir = work / "plugins"
            plugin_dir.mkdir()
            plugin = plugin_process(plugin_dir)
            stack.callback(plugin.wait, 10)
            stack.callback(plugin.terminate)
            cases = tuple(args.cases.split(","))
            vault = None
            if "vault" in cases:
                vault = VaultCase.create(stack.enter_context(dev_server()))
            world = World(work, plugin_dir, checkouts, hidden, vault, args.gap, cases)
            results = asyncio.run(run(world, args.rounds, args.burst, args.starts))
    finally:
        force_unmount_under(str(work))
        shutil.rmtree(work, ignore_errors=True)
    results["settings"] = {"gap_s": args.gap, "rounds": args.rounds, "burst": args.burst}
    results["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load": os.getloadavg()[0],
    }
    print(json.dumps(results, indent=2))
    print(table(results), file=sys.stderr)


def table(results: dict[str, Any]) -> str:
    """p50 / p99 per figure, one column per agent (and the floors), for reading at a glance."""
    lines = []
    for part in ("steady", "first"):
        owners = results.get(part, {})
        keys = sorted({key for samples in owners.values() for key in samples})
        lines.append(f"{part:40} " + " ".join(f"{owner:>16}" for owner in owners))
        for key in keys:
            cells = []
            for samples in owners.values():
                found = samples.get(key)
                cells.append(f"{found['p50']:7.2f} /{found['p99']:7.2f}" if found else " " * 16)
            lines.append(f"{key:40} " + " ".join(cells))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
