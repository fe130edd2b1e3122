"""End to end: one pod's five volumes, one per secret store (Vault, AWS, Azure, GCP and an
upstream plugin), published at once through the agent's CSI socket by a grpcio kubelet, against
the agent as a real subprocess (standalone mode, real tmpfs as root).

Shows that each provider authenticates with the pod's identity for its own store and nothing
else reaches that store, that no secret value or credential reaches the agent's output, and that
a store whose answers are held (a slow backend) holds up only its own volume: the other four
complete while it waits. No test waits on time: each waits on what it observes (a request held
at the slow store's gate, the four other publishes completing), with a bound only for failure.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from agent._proto.csi import v1 as csi
from tests.e2e.conftest import AgentProcess, Agents, new_pod_uid
from tests.support.aws import ROLE_ARN
from tests.support.azure import WI_CLIENT
from tests.support.five_stores import (
    AUDIENCES,
    FILE,
    NAMESPACE,
    SERVICE_ACCOUNT,
    STORES,
    FiveStores,
    five_stores,
)
from tests.support.jwt_signer import JwtSigner
from tests.support.kubelet import Kubelet
from tests.support.moto import MotoServer
from tests.support.mounts import mounts_under
from tests.support.openbao import OpenBaoServer
from tests.support.pki import ServerTLS

FAILURE_BOUND_S = 60.0  # only ever reached when the behaviour under test is broken


@pytest.fixture
async def stores(
    openbao: OpenBaoServer,
    moto: MotoServer,
    jwt_signer: JwtSigner,
    azure_tls: ServerTLS,
    tmp_path: Path,
) -> AsyncIterator[FiveStores]:
    async with five_stores(
        openbao=openbao,
        moto=moto,
        signer=jwt_signer,
        azure_tls=azure_tls,
        directory=tmp_path,
    ) as world:
        yield world


@pytest.fixture
def node(agents: Agents, stores: FiveStores) -> Iterator[AgentProcess]:
    """The agent with every provider cold: none is loaded until its first volume. Stopped
    before the stores, so no connection of its is open when they close."""
    agent = agents.new(f"--provider-volume={stores.plugin_dir}")
    agent.env = {**os.environ, **stores.env}
    (agents.root / "five.yaml").write_text(stores.manifests(), encoding="utf-8")
    agent.start()
    agent.wait_ready()
    yield agent
    assert agent.terminate() == 0


class Pod:
    """The pod web-0 as kubelet sees it: one uid, a volume per store."""

    def __init__(self, agent: AgentProcess, stores: FiveStores) -> None:
        self.agent, self.stores = agent, stores
        self.uid = new_pod_uid()
        self.kubelet = Kubelet(str(agent.socket))

    def target(self, store: str) -> Path:
        return self.agent.target(self.uid, volume=store)

    def publish(self, store: str) -> asyncio.Task[csi.NodePublishVolumeResponse]:
        request = self.stores.publish(store, str(self.target(store)), self.uid)
        return asyncio.create_task(self.kubelet.publish(request), name=f"publish-{store}")

    def contents(self, store: str) -> bytes:
        return (self.target(store) / FILE).read_bytes()

    async def remove(self) -> None:
        """Kubelet tearing the pod down: every volume unpublished, nothing left mounted."""
        try:
            for store in STORES:
                if mounts_under(str(self.target(store))):
                    await self.kubelet.unpublish(f"csi-{store}", str(self.target(store)))
                assert mounts_under(str(self.target(store))) == []
        finally:
            await self.kubelet.close()


@pytest.fixture
async def pod(node: AgentProcess, stores: FiveStores) -> AsyncIterator[Pod]:
    web = Pod(node, stores)
    try:
        yield web
    finally:
        for store in STORES:
            stores.gate(store).open()
        await web.remove()


async def test_one_pod_mounts_five_stores_at_once_each_with_its_own_identity(
    pod: Pod, stores: FiveStores, node: AgentProcess
) -> None:
    tasks = {store: pod.publish(store) for store in STORES}
    await asyncio.wait_for(asyncio.gather(*tasks.values()), FAILURE_BOUND_S)

    for store in STORES:
        assert pod.contents(store) == stores.values[store], store
        assert mounts_under(str(pod.target(store))) == [str(pod.target(store))]
    completed = node.events_named("node_publish.completed")
    assert sorted(e["provider"] for e in completed) == sorted(map(stores.provider, STORES))

    # Each store received its own audience's token and nothing of the others'.
    for store, audience in AUDIENCES.items():
        assert stores.received(store, stores.tokens[audience]), store
        for credential in stores.foreign_credentials(store):
            assert not stores.received(store, credential), f"{store} got a foreign credential"
    # ... and signed in as the pod's own identity there.
    subject = f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"
    [issued] = stores.aws_identity.issued
    assert (issued.subject, issued.role_arn) == (subject, ROLE_ARN)
    assert {seen.access_key for seen in stores.aws_secrets.seen} == {issued.access_key}
    assert stores.azure.entra.sign_ins == [("client_assertion", WI_CLIENT)]
    assert stores.gcp.cloud.count("/v1/identitybindingtoken") == 1
    assert stores.gcp.cloud.count(":generateAccessToken") == 1
    [login] = [r for r in stores.taps["vault"].requests if "/login" in r.path]
    assert json.loads(login.body)["jwt"] == stores.tokens["vault"]
    assert json.loads(login.body)["role"] == stores.vault.role

    # The plugin gets what upstream's driver sends a plugin: its own volume's attributes (with
    # the pod's tokens in them) and its own node-publish secret.
    [mount] = stores.plugin.requests
    assert json.loads(mount.secrets) == stores.node_publish
    attributes = json.loads(mount.attributes)
    volume_context = stores.publish("plugin", str(pod.target("plugin")), pod.uid).volume_context
    assert attributes == {**stores.parameters["plugin"], **volume_context}
    sent = json.loads(attributes["csi.storage.k8s.io/serviceAccount.tokens"])
    assert {audience: t["token"] for audience, t in sent.items()} == stores.tokens

    output = node.output()
    for value in stores.secret_values():
        assert value.decode() not in output
    for credential in [*stores.tokens.values(), *stores.node_publish.values()]:
        assert credential not in output


@pytest.mark.parametrize("slow", STORES)
async def test_a_slow_store_holds_up_only_its_own_volume(
    pod: Pod, stores: FiveStores, node: AgentProcess, slow: str
) -> None:
    gate = stores.gate(slow)
    gate.close()
    tasks = {store: pod.publish(store) for store in STORES}
    others = [task for store, task in tasks.items() if store != slow]

    await asyncio.wait_for(gate.holding(), FAILURE_BOUND_S)
    done, pending = await asyncio.wait(others, timeout=FAILURE_BOUND_S)
    assert not pending, f"held up by the slow {slow}: {[t.get_name() for t in pending]}"
    for task in done:
        task.result()  # raises if a publish failed
    assert not tasks[slow].done(), f"{slow} answered through a closed gate"
    for store in STORES:
        if store != slow:
            assert pod.contents(store) == stores.values[store], store
    assert mounts_under(str(pod.target(slow))) in ([], [str(pod.target(slow))])
    status, _ = node.get("health", "/healthz")
    assert status == 200  # the event loop kept turning while the slow store held a call

    gate.open()
    await asyncio.wait_for(tasks[slow], FAILURE_BOUND_S)
    assert pod.contents(slow) == stores.values[slow]
