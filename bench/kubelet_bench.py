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
process as kubelet (grpcio) and as the floors' client. ``--kubernetes`` runs the agent in
Kubernetes mode instead, against the tests' fake API server in a process of its own
(``bench/agent_modes.py`` says what changes: pods in the API, statuses written behind the
reply and timed at the server, the informers' start). ``--baseline DIR`` (a directory with
another checkout's ``agent`` package, e.g. ``git archive <commit> agent | tar -x -C DIR``)
runs that agent beside this one, calls alternating one by one, so both see the same machine.

``unshare -m --propagation private python -m bench.kubelet_bench --rounds 100 [--kubernetes]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack, ExitStack
from pathlib import Path
from typing import Any

from bench.agent_modes import Kubernetes, Mode, Standalone
from bench.go_kubelet import build as build_go_client
from bench.instant import hide_dev_packages
from bench.kube_api_process import KubeApiProcess
from bench.kubelet_cases import (
    INPROCESS_OBJECTS,
    INPROCESS_SIZE,
    PLUGIN_NAME,
    PLUGIN_OBJECTS,
    PluginFloor,
    TmpfsFloor,
    VaultCase,
    VaultFloor,
)
from bench.kubelet_nodes import (
    REPO,
    Node,
    Samples,
    World,
    new_site,
    prepare,
    probe,
    publish,
    site_figures,
    start_node,
    stop_node,
)
from bench.publish_bench import percentile
from tests.support.mounts import force_unmount_under
from tests.support.openbao import dev_server


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
    found: dict[str, Samples] = {node.site.label: {} for node in nodes}
    found["floor"] = {}

    def add(owner: str, key: str, value: float) -> None:
        found[owner].setdefault(key, []).append(value)

    for pacing, gap, repeat in (("paced", world.gap, 1), ("b2b", 0.0, burst)):
        for round_ in range(rounds if pacing == "paced" else max(rounds // burst, 3)):
            order = nodes if round_ % 2 == 0 else nodes[::-1]
            for case in world.cases:
                for node in order:
                    key = f"{case}.{pacing}"
                    await world.mode.release(node)
                    requests = [await prepare(node.site, world, case) for _ in range(repeat)]
                    for index, request in enumerate(requests):
                        counted = pacing == "paced" or index > 0  # a burst's first warms up
                        await asyncio.sleep(gap)
                        value = await publish(node, world, request, key if counted else "warmup")
                        if counted:
                            add(node.site.label, key, value)
                    for index in range(repeat):
                        await asyncio.sleep(gap)
                        value = await probe(node)
                        if pacing == "paced" or index:
                            add(node.site.label, f"probe.{pacing}", value)
                for name, call in floors.calls(case).items():
                    for index in range(repeat):
                        await asyncio.sleep(gap)
                        value = await call()
                        if pacing == "paced" or index:
                            add("floor", f"{case}.{name}.{pacing}", value)
    return found


async def first_publishes(world: World, starts: int) -> dict[str, Samples]:
    """A new agent per sample: exec to serving, then the first publish right away, and a second
    one after the gap (both volumes' pods made before the exec)."""
    found: dict[str, Samples] = {label: {} for label in world.checkouts}
    labels = list(world.checkouts)
    for index in range(starts):
        for case in world.cases:
            order = labels if index % 2 == 0 else labels[::-1]
            for label in order:
                number = (index * 10 + world.cases.index(case)) * len(labels) + labels.index(label)
                site = new_site(world, label, number)
                requests = [await prepare(site, world, case) for _ in range(2)]
                node = await start_node(world, site)
                try:
                    first = await publish(node, world, requests[0], f"{case}.first")
                    await asyncio.sleep(world.gap)
                    second = await publish(node, world, requests[1], f"{case}.second")
                    await asyncio.sleep(world.gap)  # the status writes behind the reply
                finally:
                    await stop_node(node, world.mode)
                mine = found[label]
                mine.setdefault("start_to_serving", []).append(node.start_ms)
                mine.setdefault(f"{case}.first", []).append(first)
                mine.setdefault(f"{case}.second_after_gap", []).append(second)
                for key, value in site_figures(site).items():
                    mine.setdefault(key, []).extend(value)
                for key, value in world.mode.figures(node).items():
                    mine.setdefault(key, []).extend(value)
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
        for number, label in enumerate(world.checkouts):
            node = await start_node(world, new_site(world, label, 999 - number))
            stack.push_async_callback(stop_node, node, world.mode)
            nodes.append(node)
        for node in nodes:  # warm-up, not counted
            for case in world.cases:
                for _ in range(10):
                    await world.mode.release(node)
                    await publish(node, world, await prepare(node.site, world, case), "warmup")
        # The warm-up's status writes (Kubernetes mode) drained from the client-side limit.
        await asyncio.sleep(2)
        measured = await steady(nodes, world, floors, rounds, burst)
        for node in nodes:
            await world.mode.release(node)  # and so the last status writes have arrived
            mine = measured[node.site.label]
            for key, values in site_figures(node.site).items():
                mine.setdefault(key, []).extend(values)
            for key, values in world.mode.figures(node).items():
                if not key.startswith("warmup"):
                    mine.setdefault(key, []).extend(values)
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
        "--kubernetes",
        action="store_true",
        help="Kubernetes mode: the agents against the fake API server (bench/kube_api_process.py)",
    )
    parser.add_argument(
        "--clients",
        default="grpcio",
        help="kubelet's clients, comma-separated: grpcio (one channel); go (grpc-go, kubelet's "
        "stack, one connection); kubelet (grpc-go, a new connection per call, as kubelet "
        "calls); bench/go_kubelet.py. With several, each agent runs once per client, "
        "interleaved",
    )
    parser.add_argument(
        "--with-dev-packages", action="store_true", help="let the agent see pydantic (dev venv)"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ssa-kb-", dir="/tmp"))
    sources = {"this": Path(args.candidate).resolve() if args.candidate else REPO}
    if args.baseline:
        sources["baseline"] = Path(args.baseline).resolve()
    clients = args.clients.split(",")
    if not set(clients) <= {"grpcio", "go", "kubelet"}:
        parser.error(f"--clients: grpcio, go or kubelet, not {args.clients!r}")
    checkouts, client_of = {}, {}
    for base, source in sources.items():
        for client in clients:
            label = base if client == "grpcio" else f"{base}-{client}"
            checkouts[label], client_of[label] = source, client
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
            mode: Mode = Standalone(vault)
            if args.kubernetes:
                api = KubeApiProcess()
                stack.callback(api.close)
                mode = Kubernetes(api, vault)
            go_client = build_go_client(work) if set(clients) - {"grpcio"} else None
            world = World(
                work, plugin_dir, checkouts, hidden, vault, args.gap, cases, mode, client_of,
                go_client,
            )  # fmt: skip
            results = asyncio.run(run(world, args.rounds, args.burst, args.starts))
    finally:
        force_unmount_under(str(work))
        shutil.rmtree(work, ignore_errors=True)
    results["settings"] = {
        "mode": "kubernetes" if args.kubernetes else "standalone",
        "clients": clients,
        "gap_s": args.gap,
        "rounds": args.rounds,
        "burst": args.burst,
    }
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
