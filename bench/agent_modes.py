"""The agent's two modes as ``bench/kubelet_bench.py`` runs them.

- :class:`Standalone`: classes from a manifest directory, status files; a volume is
  unpublished right after its publish (as the benchmark always did).
- :class:`Kubernetes`: the agent against the fake API server (``bench/kube_api_process.py``,
  a process of its own), classes from its informer. As in a cluster, each volume's pod exists
  in the API on the agent's node before kubelet publishes it (so it reaches the agent's pod
  informer before the call), and it stays until the next volume is prepared and its
  SecretProviderClassPodStatus, written behind the reply, has reached the API (an unpublish
  coming sooner would cancel that write); a burst of publishes is pods starting, none stopping.
  Figures of its own: when each publish's status create reached the API server, and what the
  agent read from the API around its first publish.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

import yaml

from agent._proto.csi import v1 as csi
from agent.flag_types import DEFAULTS
from bench.kube_api_process import STATUSES, Arrival, KubeApiProcess
from bench.kubelet_cases import VaultCase, manifests
from bench.kubelet_nodes import Node, Samples, Site
from tests.fakes.kube_api import pod

POD_NAME = "csi.storage.k8s.io/pod.name"


class Mode(Protocol):
    name: str

    def flags(self, site: Site) -> list[str]:
        """The agent's flags for this mode (classes, node name)."""

    async def prepare(self, site: Site, request: csi.NodePublishVolumeRequest) -> None:
        """Before the gap: what exists when kubelet publishes ``request``."""

    async def published(self, node: Node, request: csi.NodePublishVolumeRequest) -> None:
        """Right after the timed publish."""

    async def release(self, node: Node) -> None:
        """Unpublish what :meth:`published` kept."""

    def figures(self, node: Node) -> Samples:
        """This mode's own samples for the timed publishes of ``node``, by key."""


class Standalone:
    name = "standalone"

    def __init__(self, vault: VaultCase | None) -> None:
        self.vault = vault

    def flags(self, site: Site) -> list[str]:
        directory = site.root / "spc"
        directory.mkdir(exist_ok=True)
        for name, text in manifests(self.vault).items():
            (directory / name).write_text(text)
        return [f"--standalone-dir={directory}", "--nodeid=bench"]

    async def prepare(self, site: Site, request: csi.NodePublishVolumeRequest) -> None:
        return None

    async def published(self, node: Node, request: csi.NodePublishVolumeRequest) -> None:
        await node.kubelet.unpublish(request.volume_id, request.target_path)

    async def release(self, node: Node) -> None:
        return None

    def figures(self, node: Node) -> Samples:
        return {}


class Kubernetes:
    name = "kubernetes"

    def __init__(self, api: KubeApiProcess, vault: VaultCase | None) -> None:
        self.api = api
        for text in manifests(vault).values():
            self.api.put(yaml.safe_load(text))

    @staticmethod
    def node_name(site: Site) -> str:
        return f"bench-{site.label}"  # one per agent, so agents side by side see only theirs

    def flags(self, site: Site) -> list[str]:
        return [
            f"--kubeconfig={self.api.kubeconfig}",
            f"--nodeid={self.node_name(site)}",
            "--agent-namespace=kube-system",
        ]

    async def prepare(self, site: Site, request: csi.NodePublishVolumeRequest) -> None:
        context = request.volume_context
        self.api.put(
            pod(
                context[POD_NAME],
                context["csi.storage.k8s.io/pod.namespace"],
                node=self.node_name(site),
                uid=context["csi.storage.k8s.io/pod.uid"],
                service_account=context["csi.storage.k8s.io/serviceAccount.name"],
                spc=context["secretProviderClass"],
            )
        )

    async def published(self, node: Node, request: csi.NodePublishVolumeRequest) -> None:
        node.site.live.append(request)

    async def release(self, node: Node) -> None:
        """Once every kept volume's status has reached the API (an unpublish before that
        would cancel the write, and its figure), unpublish them and delete their pods. After
        a burst, also wait for the status deletes and for the agent's background API lane to
        refill (``--kube-api-qps`` tokens a second), so each burst starts with the budget a
        node's burst of pod starts would find, not one the benchmark's churn drained."""
        live, node.site.live = node.site.live, []
        pods = [request.volume_context[POD_NAME] for request in live]
        await self._written(pods, "create")
        for request in live:
            await node.kubelet.unpublish(request.volume_id, request.target_path)
            context = request.volume_context
            self.api.delete("pods", context["csi.storage.k8s.io/pod.namespace"], context[POD_NAME])
        if len(live) > 1:
            await self._written(pods, "delete")
            await asyncio.sleep(2 * len(live) / DEFAULTS.kube_api_qps)

    async def _written(self, pods: list[str], verb: str, timeout: float = 10) -> None:
        waiting = set(pods)
        deadline = time.monotonic() + timeout
        while waiting:
            waiting -= self.api.statuses_written(sorted(waiting), verb)
            if waiting and time.monotonic() > deadline:
                raise RuntimeError(f"no SecretProviderClassPodStatus {verb} for {sorted(waiting)}")
            await asyncio.sleep(0.01)

    def figures(self, node: Node) -> Samples:
        """Per key: ``<key>.spcps_after_reply`` (the status create's arrival at the API server
        after kubelet had the reply, ms; negative if it came first); for the first publish of
        a new agent also ``spc_list_after_exec``/``pod_list_after_exec`` (the informers' first
        LIST, ms after exec) and ``<key>.api_reads`` (GETs that arrived while it ran)."""
        found: Samples = {}
        arrivals = [a for a in self.api.arrivals() if a.at >= node.exec_at]
        for arrival in arrivals:
            timed = node.site.timed.get(arrival.pod)
            if arrival.resource == STATUSES and arrival.verb == "create" and timed is not None:
                delay = (arrival.at - timed.replied) * 1000
                found.setdefault(f"{timed.key}.spcps_after_reply", []).append(delay)
        for timed in node.site.timed.values():
            if timed.key.endswith(".first"):
                reads = [a for a in arrivals if timed.sent <= a.at <= timed.replied]
                found[f"{timed.key}.api_reads"] = [sum(a.verb == "get" for a in reads)]
                found.update(self._start(node, arrivals))
        return found

    @staticmethod
    def _start(node: Node, arrivals: list[Arrival]) -> Samples:
        """The informers' first LISTs after exec, and whether the agent logged serving before
        its caches were synced (``k8s.start_not_synced``: 1, else 0)."""
        log = (node.site.root / "agent.log").read_text()
        found: Samples = {"start_not_synced": [float("k8s.start_not_synced" in log)]}
        for resource, key in (("secretproviderclasses", "spc"), ("pods", "pod")):
            first = next((a for a in arrivals if a.resource == resource and a.verb == "list"), None)
            if first is not None:
                found[f"{key}_list_after_exec"] = [(first.at - node.exec_at) * 1000]
        return found
