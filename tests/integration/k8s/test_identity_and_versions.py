"""What Kubernetes mode adds around a publish: service-account annotations for providers,
pod-bound tokens from TokenRequest, the HMAC key Secret that makes object versions agree
across nodes (real OpenBao), and a clean shutdown."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import grpc
import jwt as pyjwt
import pytest
import yaml

from agent.core.identity import refreshed_identity
from agent.errors import ProviderError
from agent.k8s.api import KubeApi
from agent.k8s.connection import load_configuration
from agent.k8s.secrets import VersionKeySecret
from agent.logs import configure_logging
from agent.model import (
    MountResult,
    ObjectVersion,
    PodIdentity,
    ProviderRequest,
    SecretFile,
    ServiceAccountToken,
)
from agent.provider_setup import load_version_key
from agent.providers.registry import ProviderContext, ProviderRegistry
from tests.fakes.kube_api import FakeKubeApi, secret_provider_class, service_account
from tests.support.jwt_signer import JwtSigner
from tests.support.kube_agent import KubeAgents, KubeHarness, eventually
from tests.support.openbao import OpenBaoServer, VaultWorld, build_world


class RoleFromAnnotation:
    """A provider that, like the cloud ones, reads its identity from the pod's service account."""

    name = "annotated"

    def __init__(self, context: ProviderContext) -> None:
        assert context.service_accounts is not None
        self._accounts = context.service_accounts

    async def mount(self, request: ProviderRequest) -> MountResult:
        pod = request.identity
        found = await self._accounts.annotations(pod.namespace, pod.service_account)
        role = found.get("eks.amazonaws.com/role-arn", "").encode()
        return MountResult((SecretFile("role", 0o644, role),), (ObjectVersion("role", "1"),))


async def annotated_node(agents: KubeAgents, kube_api: FakeKubeApi) -> KubeHarness:
    """An agent with the ``annotated`` provider, and class ``aws-like`` of it."""
    kube_api.store.put(
        secret_provider_class("aws-like", provider="annotated", parameters={"a": "b"})
    )
    registry = ProviderRegistry(
        timeout=5, version_key=b"k" * 32, factories={"annotated": RoleFromAnnotation},
        load_entry_points=False,
    )  # fmt: skip
    return await agents.start(registry=registry)


async def test_providers_read_service_account_annotations_through_the_api(
    agents: KubeAgents, kube_api: FakeKubeApi
) -> None:
    role = "arn:aws:iam::111122223333:role/web"
    kube_api.store.put(service_account("web", annotations={"eks.amazonaws.com/role-arn": role}))
    node = await annotated_node(agents, kube_api)
    first, second = await node.add_pod("web-0", spc="aws-like"), await node.add_pod("web-1")
    target = await node.publish(first, spc="aws-like", service_account="web")
    await node.publish(second, spc="aws-like", service_account="web")
    assert Path(target, "role").read_bytes() == role.encode()
    assert kube_api.requests.count(verb="get", resource="serviceaccounts") == 1  # cached
    orphan = await node.add_pod("web-2", spc="aws-like")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await node.publish(orphan, spc="aws-like", service_account="missing")
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "serviceaccount default/missing not found" in (caught.value.details() or "")


async def test_publishes_of_many_pods_of_one_account_share_one_read(
    agents: KubeAgents, kube_api: FakeKubeApi
) -> None:
    """A node's start or a scale-up: 40 pods of one account publish at once. One GET serves
    them all (before: 40, the publish lane's burst spent and the last publishes delayed by
    its rate: 100 such publishes took 3.6 s instead of 0.13 s)."""
    role = "arn:aws:iam::111122223333:role/web"
    kube_api.store.put(service_account("web", annotations={"eks.amazonaws.com/role-arn": role}))
    node = await annotated_node(agents, kube_api)
    pods = [await node.add_pod(f"web-{i}", spc="aws-like") for i in range(40)]
    held = kube_api.faults.hold(verb="get", resource="serviceaccounts")
    publishes = [node.publish(p, spc="aws-like", service_account="web") for p in pods]
    running = asyncio.gather(*publishes)
    await held.wait_held()
    held.release()
    targets = await running
    assert kube_api.requests.count(verb="get", resource="serviceaccounts") == 1
    assert {Path(t, "role").read_bytes() for t in targets} == {role.encode()}


async def test_a_long_service_account_name_is_quoted_cut_in_the_error_and_the_event(
    agents: KubeAgents, kube_api: FakeKubeApi
) -> None:
    """A valid name of 200 characters, that no ServiceAccount has, reaches kubelet's error and
    the pod's event cut at 80 characters, as other names a request brings. Before: whole."""
    node = await annotated_node(agents, kube_api)
    web = await node.add_pod("web-0", spc="aws-like")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await node.publish(web, spc="aws-like", service_account="s" * 200)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    error = f"serviceaccount default/{'s' * 80!r}... not found"
    assert caught.value.details() == error
    event = await node.event("GRPCProviderError")
    assert event["message"] == f"failed to mount spc default/aws-like (provider annotated): {error}"


async def test_token_request_fallback_mints_a_pod_bound_token(
    agents: KubeAgents, kube_api: FakeKubeApi, jwt_signer: JwtSigner
) -> None:
    kube_api.store.put(service_account("web"))
    node = await agents.start(token_request_fallback=True)
    web = await node.add_pod("web-0", service_account="web")
    meta = web["metadata"]
    assert node.cluster.tokens is not None
    identity = PodIdentity("default", "web-0", meta["uid"], "web", {})
    token = await node.cluster.tokens.mint(identity, "vault")
    claims = pyjwt.decode(token.token, options={"verify_signature": False})
    assert claims["aud"] == ["vault"]
    assert claims["kubernetes.io"]["pod"] == {"name": "web-0", "uid": meta["uid"]}
    assert token.expires_at is not None
    issued = kube_api.issuer.issued[-1]
    assert (issued.bound_kind, issued.bound_name) == ("Pod", "web-0")
    # An expiring kubelet token is replaced; the text never shows in a repr.
    expired = ServiceAccountToken("old", token.expires_at.replace(year=2000))
    stale = PodIdentity("default", "web-0", meta["uid"], "web", {"vault": expired})
    fresh = await refreshed_identity(stale, node.cluster.tokens)
    assert fresh.tokens["vault"].token != "old"
    assert "eyJ" not in repr(fresh)


async def test_token_request_fallback_is_off_by_default(node: KubeHarness) -> None:
    assert node.cluster.tokens is None


@pytest.fixture
def world(openbao: OpenBaoServer, jwt_signer: JwtSigner) -> VaultWorld:
    world = build_world(openbao, jwt_signer)
    world.admin.kv_put(world.kv2, "team-a/db", {"password": "hunter2-but-longer"}, version=2)
    return world


def _vault_registry(root: Path, address: str) -> ProviderRegistry:
    return ProviderRegistry(
        timeout=10,
        version_key=load_version_key(str(root / "state")),  # node-local: differs per node
        options={"vault_address": address},
        load_entry_points=False,
    )


async def test_two_nodes_report_the_same_version_for_the_same_secret(
    agents: KubeAgents, kube_api: FakeKubeApi, world: VaultWorld, tmp_path: Path
) -> None:
    objects = [
        {"objectName": "db", "secretPath": f"{world.kv2}/data/team-a/db", "secretKey": "password"}
    ]
    kube_api.store.put(
        secret_provider_class(
            "db", namespace=world.namespace, provider="vault",
            parameters={"roleName": world.role, "vaultAuthMountPath": world.jwt_mount,
                        "objects": yaml.safe_dump(objects)},
        )
    )  # fmt: skip
    versions = []
    for node_name in ("node-a", "node-b"):
        root = tmp_path / node_name
        node = await agents.start(
            node=node_name, root=root, registry=_vault_registry(root, world.server.address)
        )
        pod = await node.add_pod(
            f"app-{node_name}", world.namespace, spc="db", node=node_name,
            service_account=world.service_account,
        )  # fmt: skip
        uid = pod["metadata"]["uid"]
        tokens = {"vault": world.jwt(pod_name=f"app-{node_name}", pod_uid=uid)}
        await node.publish(pod, spc="db", tokens=tokens, service_account=world.service_account)
        await node.settle()
        status = node.status(f"app-{node_name}-{world.namespace}-db", world.namespace)
        assert status is not None
        versions.append(status["status"]["objects"])
    assert versions[0] == versions[1]
    assert versions[0][0]["version"]
    assert kube_api.requests.count(verb="create", resource="secrets") == 1  # created once
    key = kube_api.store.get("secrets", "kube-system", "secrets-store-agent-hmac-key")
    assert key is not None and len(key["data"]["key"]) >= 40


def _server_side(task: asyncio.Task[object]) -> bool:
    code = getattr(task.get_coro(), "cr_code", None)
    filename = code.co_filename if code is not None else ""
    return "/aiohttp/web_" in filename or "/tests/fakes/" in filename


async def test_stop_leaves_no_task_and_no_watch(agents: KubeAgents, kube_api: FakeKubeApi) -> None:
    node = await agents.start()
    await node.publish(await node.add_pod("web-0"))
    assert kube_api.store.watchers() == 2
    await agents.stop(node, unpublish=True)
    current = asyncio.current_task()
    # Only the fake API server's side of the closed connections may still be winding down.
    leftovers = [
        task for task in asyncio.all_tasks() if task is not current and not _server_side(task)
    ]
    assert leftovers == []
    await eventually(lambda: kube_api.store.watchers() == 0, "the server saw the watches end")


async def test_the_hmac_key_secret_is_named_in_the_log_lines_about_it(
    agents: KubeAgents, kube_api: FakeKubeApi
) -> None:
    lines = io.StringIO()
    configure_logging(json=True, verbosity=0, stream=lines)
    kube_api.faults.fail(403, verb="get", resource="secrets", times=1)
    await agents.start()
    events = {e["event"]: e for e in map(json.loads, lines.getvalue().splitlines())}
    ref = "kube-system/secrets-store-agent-hmac-key"
    assert events["version_key.unavailable"]["secret_name"] == ref
    assert "is forbidden" in events["version_key.unavailable"]["error"]
    assert events["version_key.created"]["secret_name"] == ref


@pytest.mark.parametrize("data", [["key"], {"key": 5}, {"key": "c2hvcnQ="}, None])
async def test_a_malformed_hmac_key_secret_is_named_and_retried(
    kube_api: FakeKubeApi, data: object
) -> None:
    client = KubeApi()
    client.connect(await load_configuration(str(kube_api.kubeconfig_path)))
    broken = {"apiVersion": "v1", "kind": "Secret", "data": data}
    broken["metadata"] = {"name": "hmac", "namespace": "kube-system"}
    kube_api.faults.answer(json.dumps(broken).encode(), verb="get", resource="secrets")
    try:
        with pytest.raises(ValueError, match=r"secret kube-system/hmac has no usable data.key"):
            await VersionKeySecret(client, "kube-system", "hmac").load()
    finally:
        await client.close()


async def test_without_a_hmac_secret_name_the_agent_reads_no_secret_and_logs_its_settings(
    agents: KubeAgents, kube_api: FakeKubeApi
) -> None:
    """The chart passes ``--hmac-secret-name=`` when Vault is not built in, and grants no Secret
    access: the agent must not ask for one (no Forbidden retries, no wait at start)."""
    lines = io.StringIO()
    configure_logging(json=True, verbosity=0, stream=lines)
    kube_api.faults.fail(403, verb="get", resource="secrets", times=100)
    node = await agents.start(hmac_secret_name="", builtin_providers=("aws", "gcp"))
    await node.publish(await node.add_pod("web-0"))

    events = [json.loads(line) for line in lines.getvalue().splitlines()]
    names = {e["event"] for e in events}
    assert "version_key.unavailable" not in names and "k8s.start_not_synced" not in names
    assert kube_api.store.list("secrets", "kube-system") == []
    (configuration,) = [e for e in events if e["event"] == "agent.configuration"]
    assert configuration["settings"]["hmac_secret_name"] == ""
    assert configuration["settings"]["builtin_providers"] == ["aws", "gcp"]
    assert configuration["settings"]["node_id"] == node.settings.node_id


async def test_answers_of_a_broken_server_are_named_not_crashes(
    agents: KubeAgents, kube_api: FakeKubeApi
) -> None:
    """A TokenRequest answer whose status is not an object, a ServiceAccount whose metadata is
    not one: the token request says it got no token, the annotations are empty."""
    node = await agents.start(token_request_fallback=True)
    web = await node.add_pod("web-0", service_account="web")
    identity = PodIdentity("default", "web-0", web["metadata"]["uid"], "web", {})
    kube_api.faults.answer(b'{"status": "issued"}', status=201, resource="serviceaccounts/token")
    assert node.cluster.tokens is not None
    with pytest.raises(ProviderError, match="token request for serviceaccount default/web"):
        await node.cluster.tokens.mint(identity, "vault")
    broken = b'{"kind": "ServiceAccount", "metadata": ["web"]}'
    kube_api.faults.answer(broken, verb="get", resource="serviceaccounts")
    assert await node.cluster.service_accounts.annotations("default", "web") == {}
