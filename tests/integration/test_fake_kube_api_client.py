"""The fake Kubernetes API through kubernetes_asyncio, the client library the agent uses: if
this library accepts the fake's discovery, lists, watches, errors and TokenRequests, the
adapter's tests against the fake test something real."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException

from tests.fakes.kube_api import (
    SPC_GROUP,
    FakeKubeApi,
    pod,
    secret_provider_class,
    service_account,
)
from tests.support.jwt_signer import JwtSigner


@pytest.fixture
async def api(kube_api: FakeKubeApi) -> AsyncIterator[client.ApiClient]:
    configuration = client.Configuration()
    await config.load_kube_config(
        config_file=str(kube_api.kubeconfig_path), client_configuration=configuration
    )
    async with client.ApiClient(configuration) as api_client:
        yield api_client


async def test_lists_pods_on_a_node_with_the_list_resource_version(
    kube_api: FakeKubeApi, api: client.ApiClient
) -> None:
    kube_api.store.put(pod("a", node="node-a"))
    kube_api.store.put(pod("b", node="node-b"))
    kube_api.store.put(pod("c", "other", node="node-a"))

    pods = await client.CoreV1Api(api).list_pod_for_all_namespaces(
        field_selector="spec.nodeName=node-a"
    )

    assert [(p.metadata.namespace, p.metadata.name) for p in pods.items] == [
        ("default", "a"),
        ("other", "c"),
    ]
    assert pods.metadata.resource_version == str(kube_api.store.resource_version)


async def test_watch_streams_changes_after_the_list_version(
    kube_api: FakeKubeApi, api: client.ApiClient
) -> None:
    core = client.CoreV1Api(api)
    listed = await core.list_namespaced_pod("default")
    kube_api.store.put(pod("a"))
    kube_api.store.patch("pods", "default", "a", {"status": {"phase": "Succeeded"}})
    kube_api.store.delete("pods", "default", "a")

    seen = []
    async with watch.Watch() as watcher:
        stream = watcher.stream(
            core.list_namespaced_pod,
            "default",
            resource_version=listed.metadata.resource_version,
            timeout_seconds=5,
        )
        async for event in stream:
            obj = event["object"]
            seen.append((event["type"], obj.metadata.name, obj.status.phase))
            if len(seen) == 3:
                break

    assert seen == [
        ("ADDED", "a", "Running"),
        ("MODIFIED", "a", "Succeeded"),
        ("DELETED", "a", "Succeeded"),
    ]


async def drain(list_function: Any, namespace: str, resource_version: str) -> None:
    """Read a watch (with a server timeout, so kubernetes_asyncio does not retry a 410)."""
    async with watch.Watch() as watcher:
        stream = watcher.stream(
            list_function, namespace, resource_version=resource_version, timeout_seconds=5
        )
        async for _ in stream:
            pass


async def test_watch_from_a_compacted_version_raises_410(
    kube_api: FakeKubeApi, api: client.ApiClient
) -> None:
    core = client.CoreV1Api(api)
    listed = await core.list_namespaced_pod("default")
    kube_api.store.put(pod("a"))
    kube_api.store.compact()

    with pytest.raises(ApiException) as raised:
        await drain(core.list_namespaced_pod, "default", listed.metadata.resource_version)

    assert raised.value.status == 410
    assert "too old resource version" in str(raised.value.reason)


async def test_create_conflict_and_already_exists_on_custom_objects(
    kube_api: FakeKubeApi, api: client.ApiClient
) -> None:
    custom = client.CustomObjectsApi(api)
    body = secret_provider_class("spc", parameters={"roleName": "app"})
    created = await custom.create_namespaced_custom_object(
        SPC_GROUP, "v1", "default", "secretproviderclasses", body
    )
    assert created["metadata"]["generation"] == 1

    with pytest.raises(ApiException) as exists:
        await custom.create_namespaced_custom_object(
            SPC_GROUP, "v1", "default", "secretproviderclasses", body
        )
    assert exists.value.status == 409
    assert '"reason":"AlreadyExists"' in str(exists.value.body)

    stale = dict(created, spec={"provider": "vault", "parameters": {"roleName": "x"}})
    kube_api.store.patch("secretproviderclasses", "default", "spc", {"spec": {"provider": "aws"}})
    with pytest.raises(ApiException) as conflict:
        await custom.replace_namespaced_custom_object(
            SPC_GROUP, "v1", "default", "secretproviderclasses", "spc", stale
        )
    assert conflict.value.status == 409
    assert '"reason":"Conflict"' in str(conflict.value.body)


async def test_token_request_returns_a_pod_bound_token(
    kube_api: FakeKubeApi, api: client.ApiClient, jwt_signer: JwtSigner
) -> None:
    kube_api.store.put(service_account("app"))
    bound = kube_api.store.put(pod("web", service_account="app"))
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(
            audiences=["vault"],
            expiration_seconds=600,
            bound_object_ref=client.V1BoundObjectReference(
                kind="Pod", api_version="v1", name="web", uid=bound["metadata"]["uid"]
            ),
        )
    )

    issued = await client.CoreV1Api(api).create_namespaced_service_account_token(
        "app", "default", request
    )

    claims = jwt.decode(
        issued.status.token, jwt_signer.public_pem, algorithms=["RS256"], audience="vault"
    )
    assert claims["sub"] == "system:serviceaccount:default:app"
    assert claims["kubernetes.io"]["pod"] == {"name": "web", "uid": bound["metadata"]["uid"]}
    assert issued.status.expiration_timestamp is not None

    with pytest.raises(ApiException) as missing:
        await client.CoreV1Api(api).create_namespaced_service_account_token(
            "nobody", "default", request
        )
    assert missing.value.status == 404


async def test_discovery_names_both_spc_versions(api: client.ApiClient) -> None:
    group = await client.ApisApi(api).get_api_versions()
    spc = next(g for g in group.groups if g.name == SPC_GROUP)
    assert [v.version for v in spc.versions] == ["v1", "v1alpha1"]
    assert spc.preferred_version.version == "v1"
    resources = await client.CustomObjectsApi(api).get_api_resources(SPC_GROUP, "v1alpha1")
    assert {r.name for r in resources.resources} == {
        "secretproviderclasses",
        "secretproviderclasspodstatuses",
    }


@pytest.mark.parametrize("kube_api_options", [{"tls": True, "token": "agent-token"}])
async def test_kubeconfig_with_tls_and_token(kube_api: FakeKubeApi, api: client.ApiClient) -> None:
    """What an agent started with ``--kubeconfig`` gets: HTTPS with the test CA, a token."""
    assert kube_api.url.startswith("https://")
    namespaces = await client.CoreV1Api(api).list_namespace()
    assert "default" in {n.metadata.name for n in namespaces.items}
    [listed] = kube_api.requests.filter(verb="list", resource="namespaces")
    assert listed.status == 200 and listed.user_agent.startswith("OpenAPI-Generator")
