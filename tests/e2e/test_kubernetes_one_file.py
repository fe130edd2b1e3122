"""The one-file build (``scripts/build``) in Kubernetes mode: inside an empty chroot it loads
the lean kubernetes_asyncio import from its bundle, syncs its caches from the fake API server
over HTTP, publishes a Vault volume and records its status object."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.e2e.conftest import NAMESPACE, SERVICE_ACCOUNT, VaultSetup
from tests.e2e.kubernetes import kubernetes_mode, ready
from tests.e2e.test_one_file import INSIDE, ChrootAgent, chroot, one_file  # noqa: F401
from tests.fakes.kube_api import FakeKubeApi, pod
from tests.support.kubelet import Kubelet, publish_request


class KubeChrootAgent(ChrootAgent):
    def command(self) -> list[str]:
        return kubernetes_mode(super().command(), str(INSIDE / "kubeconfig"))


async def test_kubernetes_mode_from_the_one_file(
    chroot: Path,  # noqa: F811
    kube_api: FakeKubeApi,
    vault: VaultSetup,
) -> None:
    vault.put("app/db", {"password": "from-the-bundle"})
    kube_api.store.put_yaml(
        vault.spc_yaml("app", [{"objectName": "password", "secretPath": vault.secret_path("app/db"),
                                "secretKey": "password"}])
    )  # fmt: skip
    stored = kube_api.store.put(
        pod("web-0", node="e2e-node", spc="app", service_account=SERVICE_ACCOUNT)
    )
    uid = stored["metadata"]["uid"]
    agent = KubeChrootAgent(chroot)
    kube_api.write_kubeconfig(agent.root / "kubeconfig")
    agent.start()
    try:
        await ready(agent)
        agent.target(uid)
        inside_target = (
            INSIDE / "pods" / uid / "volumes" / "kubernetes.io~csi" / "secrets" / "mount"
        )
        request = publish_request(
            str(inside_target), spc="app", uid=uid, namespace=NAMESPACE,
            service_account=SERVICE_ACCOUNT, tokens={"vault": vault.jwt()},
        )  # fmt: skip
        kubelet = Kubelet(str(agent.socket))
        try:
            await kubelet.publish(request)
            seen = chroot / inside_target.relative_to("/")
            assert (seen / "password").read_text() == "from-the-bundle"
            status = f"web-0-{NAMESPACE}-app"
            async with asyncio.timeout(10):
                while (
                    kube_api.store.get("secretproviderclasspodstatuses", NAMESPACE, status) is None
                ):
                    await asyncio.sleep(0.02)
            await kubelet.unpublish(request.volume_id, str(inside_target))
        finally:
            await kubelet.close()
    finally:
        code = agent.terminate()
    assert code == 0, agent.output()
    assert not any(
        "kubernetes_asyncio.client.models" in line for line in agent.output().splitlines()
    )
