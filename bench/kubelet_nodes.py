"""The agents ``bench/kubelet_bench.py`` runs, and kubelet's calls to them.

A :class:`Site` is one agent's place on the node (its kubelet root, its pods and volumes), a
:class:`Node` the agent process serving there. The agent's mode (standalone, or Kubernetes
against the fake API) is a :class:`~bench.agent_modes.Mode`: its flags, what exists before a
publish (a pod in the API) and what follows one.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from agent._proto.csi import v1 as csi
from bench.go_kubelet import GoKubelet
from bench.kubelet_cases import VaultCase, request_for
from tests.support.kubelet import Kubelet
from tests.support.mounts import force_unmount_under

if TYPE_CHECKING:
    from bench.agent_modes import Mode

REPO = Path(__file__).resolve().parents[1]
# BENCH_AGENT_SCRIPT: another entry point (e.g. one that times the publish steps).
AGENT_SCRIPT = Path(
    os.environ.get("BENCH_AGENT_SCRIPT") or REPO / "bench" / "instant_agent.py"
).resolve()
Samples = dict[str, list[float]]


@dataclass
class World:
    work: Path
    plugin_dir: Path
    checkouts: dict[str, Path]  # label -> directory holding its ``agent`` package
    hidden: str
    vault: VaultCase | None
    gap: float
    cases: tuple[str, ...]
    mode: Mode
    clients: dict[str, str] = field(default_factory=dict)  # label -> "go"/"kubelet"; else grpcio
    go_client: Path | None = None  # kubelet-go's binary (bench/go_kubelet.py)


@dataclass(frozen=True)
class Timed:
    """One timed publish: its sample key, and when kubelet sent it and had the reply."""

    key: str
    sent: float  # perf_counter seconds
    replied: float


@dataclass
class Site:
    """One agent's kubelet root, and the pods and volumes made there."""

    label: str
    number: int  # distinguishes this site's pod UIDs and names from other sites'
    root: Path
    serial: int = 0
    cases: dict[str, str] = field(default_factory=dict)  # target path -> sample key
    timed: dict[str, Timed] = field(default_factory=dict)  # pod name -> its timed publish
    live: list[csi.NodePublishVolumeRequest] = field(default_factory=list)  # to unpublish
    # kubelet's whole publish step (capability call + publish), by sample key: kubelet client only
    steps: Samples = field(default_factory=dict)

    def target(self) -> tuple[str, str]:
        """A new pod's volume directory, made as kubelet makes it; (target, pod uid)."""
        self.serial += 1
        uid = str(uuid.UUID(int=self.number << 20 | self.serial))
        volume = self.root / "pods" / uid / "volumes" / "kubernetes.io~csi" / "secrets"
        volume.mkdir(parents=True)
        return str(volume / "mount"), uid


@dataclass
class Node:
    """One running agent of one checkout."""

    site: Site
    process: subprocess.Popen[bytes]
    socket: str
    exec_at: float  # perf_counter seconds
    start_ms: float  # exec to the CSI socket accepting a connection
    kubelet: Kubelet | GoKubelet


def new_site(world: World, label: str, number: int) -> Site:
    root = world.work / f"{label}-{number}"
    root.mkdir(parents=True)
    return Site(label, number, root)


async def prepare(site: Site, world: World, case: str) -> csi.NodePublishVolumeRequest:
    """What exists before kubelet publishes a new pod's volume: its directory, and for the
    mode what it needs (the pod in the API)."""
    target, uid = site.target()
    request = request_for(case, target, uid, world.vault)
    await world.mode.prepare(site, request)
    return request


def _accepts(path: str) -> bool:
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


async def start_node(world: World, site: Site) -> Node:
    path = str(site.root / "csi.sock")
    paths = [str(world.checkouts[site.label]), str(REPO), world.hidden]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    command = [
        sys.executable, str(AGENT_SCRIPT), f"--endpoint=unix://{path}", "--log-format-json",
        f"--mount-mode={'tmpfs' if os.geteuid() == 0 else 'directory'}",
        "--metrics-addr=127.0.0.1:0", "--health-addr=127.0.0.1:0",
        f"--state-dir={site.root / 'state'}", f"--kubelet-root-dir={site.root}",
        f"--provider-volume={world.plugin_dir}", *world.mode.flags(site),
    ]  # fmt: skip
    started = time.perf_counter()
    process = _spawn(command, env, site.root)
    deadline = started + 30
    while not _accepts(path):
        if process.poll() is not None or time.perf_counter() > deadline:
            raise RuntimeError(f"agent {site.label} did not start; see {site.root / 'agent.log'}")
        await asyncio.sleep(0.001)
    start_ms = (time.perf_counter() - started) * 1000
    kubelet: Kubelet | GoKubelet
    client = world.clients.get(site.label, "grpcio")
    if client == "grpcio":
        kubelet = Kubelet(path)
    else:
        assert world.go_client is not None
        kubelet = await GoKubelet.start(world.go_client, path, per_call=client == "kubelet")
    # Kubelet's registration (node-driver-registrar) precedes any publish.
    await kubelet.call("Node", "NodeGetInfo", csi.NodeGetInfoRequest(), csi.NodeGetInfoResponse)
    return Node(site, process, path, started, start_ms, kubelet)


def _spawn(command: list[str], env: dict[str, str], root: Path) -> subprocess.Popen[bytes]:
    with (root / "agent.log").open("wb") as log:
        return subprocess.Popen(command, stdout=log, env=env, cwd=root)


async def stop_node(node: Node, mode: Mode) -> None:
    await mode.release(node)
    await node.kubelet.close()
    node.process.terminate()
    node.process.wait(timeout=30)
    force_unmount_under(str(node.site.root))


async def publish(
    node: Node, world: World, request: csi.NodePublishVolumeRequest, key: str
) -> float:
    """Kubelet's NodePublishVolume, timed in ms; then what the mode does after a publish."""
    started = time.perf_counter()
    await node.kubelet.publish(request)
    replied = time.perf_counter()
    elapsed = _elapsed_ms(node, started, replied)  # before the mode's calls that follow
    if isinstance(node.kubelet, GoKubelet) and node.kubelet.per_call:
        node.site.steps.setdefault(key, []).append(node.kubelet.last_step_ms)
    pod = request.volume_context["csi.storage.k8s.io/pod.name"]
    node.site.cases[request.target_path] = key
    node.site.timed[pod] = Timed(key, started, replied)
    await world.mode.published(node, request)
    return elapsed


async def probe(node: Node) -> float:
    started = time.perf_counter()
    await node.kubelet.call("Identity", "Probe", csi.ProbeRequest(), csi.ProbeResponse)
    return _elapsed_ms(node, started, time.perf_counter())


def _elapsed_ms(node: Node, started: float, replied: float) -> float:
    """The call's time where the client measures it: kubelet-go's own, else around grpcio."""
    if isinstance(node.kubelet, GoKubelet):
        return node.kubelet.last_ms
    return (replied - started) * 1000


def agent_side(site: Site) -> Samples:
    """The agent's own ``duration_ms`` per sample key, from its log."""
    found: Samples = {}
    for line in (site.root / "agent.log").read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "node_publish.completed":
            key = site.cases.get(event.get("target_path", ""))
            if key is not None:
                found.setdefault(key, []).append(float(event["duration_ms"]))
    return found


def site_figures(site: Site) -> Samples:
    """A site's own figures by sample key, warm-up left out: ``<key>.agent_side`` (the agent's
    ``duration_ms``) and ``<key>.kubelet_step`` (kubelet's whole publish step, kubelet client)."""
    found: Samples = {}
    for suffix, samples in (("agent_side", agent_side(site)), ("kubelet_step", site.steps)):
        for key, values in samples.items():
            if key != "warmup":
                found[f"{key}.{suffix}"] = values
    return found
