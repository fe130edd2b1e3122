"""The agent as a process in Kubernetes mode (fake API over HTTP, real OpenBao, real tmpfs):
``kill -9`` with 20 volumes mounted and their status writes possibly still queued, a restart,
and kubelet's republishes: nothing mounted is lost or refetched, every status object is there,
and new publishes work."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent._proto.csi import v1 as csi
from tests.e2e.conftest import NAMESPACE, SERVICE_ACCOUNT, AgentProcess, Agents, VaultSetup
from tests.e2e.kubernetes import kubernetes_mode, ready
from tests.fakes.kube_api import FakeKubeApi, pod
from tests.support.kubelet import Kubelet, publish_request
from tests.support.mounts import mounts_under

NODE = "e2e-node"
SECRET = "correct-horse-battery-staple"


@dataclass
class KubeAgentProcess(AgentProcess):
    """``python -m agent serve`` without ``--standalone-dir``: Kubernetes mode."""

    kubeconfig: str = ""

    def command(self) -> list[str]:
        return kubernetes_mode(super().command(), self.kubeconfig)


def _start(agents: Agents, kube: FakeKubeApi) -> KubeAgentProcess:
    agent = KubeAgentProcess(agents.root, [], kubeconfig=str(kube.kubeconfig_path))
    agents.started.append(agent)
    agent.start()
    return agent


async def test_kill_9_with_twenty_volumes_mounted_loses_nothing(
    agents: Agents, kube_api: FakeKubeApi, vault: VaultSetup
) -> None:
    vault.put("app/db", {"password": SECRET})
    kube_api.store.put_yaml(
        vault.spc_yaml("db", [{"objectName": "db", "secretPath": vault.secret_path("app/db"),
                               "secretKey": "password"}])
    )  # fmt: skip
    pods = [
        kube_api.store.put(pod(f"web-{i}", node=NODE, spc="db", service_account=SERVICE_ACCOUNT))
        for i in range(21)
    ]
    requests = [_request(agents.root, p, vault) for p in pods]
    first = _start(agents, kube_api)
    await ready(first)
    kubelet = Kubelet(str(first.socket))
    try:
        for request in requests[:20]:
            await kubelet.publish(request)
    finally:
        await kubelet.close()
    os.kill(first.pid, signal.SIGKILL)  # status writes may still be queued: they must not matter
    assert first.process is not None
    first.process.wait()
    for request in requests[:20]:
        _complete(Path(request.target_path))

    second = _start(agents, kube_api)
    await ready(second)
    assert second.events_named("agent.started")[-1]["recovered_volumes"] >= 1
    kubelet = Kubelet(str(second.socket))
    try:
        for request in requests[:20]:
            await kubelet.publish(request)  # kubelet's periodic republish: nothing refetched
        await _statuses(kube_api, 20)
        events = second.events()  # both runs append to one file: look after the last start
        since = max(i for i, e in enumerate(events) if e.get("event") == "agent.started")
        outcomes = [e["outcome"] for e in events[since:] if e["event"] == "node_publish.completed"]
        assert outcomes == ["already_mounted"] * 20
        await kubelet.publish(requests[20])  # and new publishes work as before
        await _statuses(kube_api, 21)
        for request in requests:
            _complete(Path(request.target_path))
        for request in requests:
            await kubelet.unpublish(request.volume_id, request.target_path)
        await _statuses(kube_api, 0)
    finally:
        await kubelet.close()
    assert second.terminate() == 0


def _request(root: Path, stored: dict[str, Any], vault: VaultSetup) -> csi.NodePublishVolumeRequest:
    meta = stored["metadata"]
    assert isinstance(meta, dict)
    uid, name = str(meta["uid"]), str(meta["name"])
    parent = root / "pods" / uid / "volumes" / "kubernetes.io~csi" / "secrets"
    parent.mkdir(parents=True, exist_ok=True)
    return publish_request(
        str(parent / "mount"),
        spc="db",
        pod=name,
        namespace=NAMESPACE,
        uid=uid,
        service_account=SERVICE_ACCOUNT,
        tokens={"vault": vault.jwt(pod_name=name)},
        volume_id=f"csi-{uid}",
    )


async def _statuses(kube: FakeKubeApi, count: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while (found := len(kube.store.list("secretproviderclasspodstatuses", NAMESPACE))) != count:
        assert time.monotonic() < deadline, f"{found} status objects, not {count}"
        await asyncio.sleep(0.02)


def _complete(target: Path) -> None:
    assert mounts_under(str(target)), f"{target} is not mounted"
    assert (target / "db").read_text() == SECRET
    leftovers = [name for name in os.listdir(target) if name.endswith("_tmp")]
    assert leftovers == [], f"half-written data in {target}: {leftovers}"
