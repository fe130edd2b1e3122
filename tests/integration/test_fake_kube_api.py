"""The fake Kubernetes API over real HTTP: the shapes and semantics the agent's adapter relies
on (checked against the kube-apiserver's behaviour, see tests/fakes/kube/*), and the test
controls (faults, outages, compaction, request log)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fakes.kube_api import (
    SPC_GROUP,
    FakeKubeApi,
    node,
    owner_reference,
    pod,
    secret,
    secret_provider_class,
    service_account,
)

PODS = "/api/v1/namespaces/default/pods"
SPCS = f"/apis/{SPC_GROUP}/v1/namespaces/default/secretproviderclasses"
SPCPS = f"/apis/{SPC_GROUP}/v1/namespaces/default/secretproviderclasspodstatuses"


@pytest.fixture
async def http(kube_api: FakeKubeApi) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(kube_api.url) as session:
        yield session


async def call(
    http: aiohttp.ClientSession, method: str, path: str, body: Any = None, **kwargs: Any
) -> tuple[int, Any]:
    if body is not None:
        kwargs["data"] = json.dumps(body)
        kwargs.setdefault("headers", {}).setdefault("Content-Type", "application/json")
    async with http.request(method, path, **kwargs) as response:
        text = await response.text()
        return response.status, json.loads(text) if text else None


async def watch_events(
    http: aiohttp.ClientSession, path: str, count: int, **params: str
) -> list[dict[str, Any]]:
    """Read ``count`` newline-delimited events from a watch (fewer if the stream ends)."""
    params.setdefault("timeoutSeconds", "10")
    events: list[dict[str, Any]] = []
    async with http.get(path, params={"watch": "1", **params}) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("application/json")
        while len(events) < count:
            line = await response.content.readline()
            if not line:
                break
            assert line.endswith(b"\n")
            events.append(json.loads(line))
    return events


def spcps(name: str, node: str = "node-a", **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{SPC_GROUP}/v1",
        "kind": "SecretProviderClassPodStatus",
        "metadata": {
            "name": name,
            "labels": {"internal.secrets-store.csi.k8s.io/node-name": node},
        },
        "status": {"podName": "web", "mounted": True, **status},
    }


# ---- reads ----


async def test_list_envelope_and_items_like_the_real_server(
    kube_api: FakeKubeApi, http: aiohttp.ClientSession
) -> None:
    kube_api.store.put(pod("a"))
    kube_api.store.put(secret_provider_class("spc", parameters={"x": "y"}))

    status, pods = await call(http, "GET", PODS)
    assert status == 200
    assert pods["kind"] == "PodList" and pods["apiVersion"] == "v1"
    assert pods["metadata"] == {"resourceVersion": str(kube_api.store.resource_version)}
    assert "kind" not in pods["items"][0]  # built-in list items carry no kind/apiVersion

    _, spcs = await call(http, "GET", SPCS)
    assert spcs["kind"] == "SecretProviderClassList"
    assert spcs["items"][0]["kind"] == "SecretProviderClass"  # custom resources keep them


async def test_get_missing_object_is_a_404_status(http: aiohttp.ClientSession) -> None:
    status, body = await call(http, "GET", f"{SPCS}/nope")
    assert status == 404
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f'secretproviderclasses.{SPC_GROUP} "nope" not found',
        "reason": "NotFound",
        "details": {"name": "nope", "group": SPC_GROUP, "kind": "secretproviderclasses"},
        "code": 404,
    }


async def test_nodes_are_cluster_scoped_and_keep_their_labels(
    kube_api: FakeKubeApi, http: aiohttp.ClientSession
) -> None:
    kube_api.store.put(node("node-a", labels={"topology.kubernetes.io/region": "eu-west-1"}))

    status, body = await call(http, "GET", "/api/v1/nodes/node-a")
    assert (status, body["kind"], body["apiVersion"]) == (200, "Node", "v1")
    assert "namespace" not in body["metadata"]
    assert body["metadata"]["labels"]["topology.kubernetes.io/region"] == "eu-west-1"
    status, body = await call(http, "GET", "/api/v1/nodes/node-b")
    assert (status, body["reason"]) == (404, "NotFound")
    assert body["message"] == 'nodes "node-b" not found'
    kube_api.faults.fail(403, verb="get", resource="nodes")
    status, body = await call(http, "GET", "/api/v1/nodes/node-a")
    assert (status, body["reason"]) == (403, "Forbidden")
    assert body["message"].endswith('get resource "nodes" in API group "" at the cluster scope')


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", ["a", "b"]),
        ("app==web,tier!=db", ["a"]),
        ("tier in (db, cache)", ["b", "c"]),
        ("tier notin (db)", ["a", "c"]),
        ("tier", ["b", "c"]),
        ("!tier", ["a"]),
    ],
)
async def test_label_selectors(
    kube_api: FakeKubeApi, http: aiohttp.ClientSession, selector: str, expected: list[str]
) -> None:
    kube_api.store.put(pod("a", labels={"app": "web"}))
    kube_api.store.put(pod("b", labels={"app": "web", "tier": "db"}))
    kube_api.store.put(pod("c", labels={"tier": "cache"}))
    _, body = await call(http, "GET", PODS, params={"labelSelector": selector})
    assert [item["metadata"]["name"] for item in body["items"]] == expected


async def test_field_selectors_and_unsupported_fields(
    kube_api: FakeKubeApi, http: aiohttp.ClientSession
) -> None:
    kube_api.store.put(pod("a", node="node-a", phase="Running"))
    kube_api.store.put(pod("b", node="node-a", phase="Succeeded"))
    kube_api.store.put(pod("c", "other", node="node-b"))
    query = {"fieldSelector": "spec.nodeName=node-a,status.phase!=Succeeded"}
    _, body = await call(http, "GET", "/api/v1/pods", params=query)
    assert [item["metadata"]["name"] for item in body["items"]] == ["a"]
    query = {"fieldSelector": "metadata.namespace=other"}
    _, body = await call(http, "GET", "/api/v1/pods", params=query)
    assert [item["metadata"]["name"] for item in body["items"]] == ["c"]

    status, error = await call(http, "GET", SPCS, params={"fieldSelector": "spec.provider=x"})
    assert status == 400
    assert error["message"] == "field label not supported: spec.provider"


async def test_pagination_reads_one_snapshot_and_expires_with_compaction(
    kube_api: FakeKubeApi, http: aiohttp.ClientSession
) -> None:
    for name in ("a", "b", "c"):
        kube_api.store.put(pod(name))
    _, first = await call(http, "GET", PODS, params={"limit": "2"})
    assert [i["metadata"]["name"] for i in first["items"]] == ["a", "b"]
    assert first["metadata"]["remainingItemCount"] == 1
    kube_api.store.put(pod("d"))  # after the snapshot: not in the next page

    token = first["metadata"]["continue"]
    _, second = await call(http, "GET", PODS, params={"limit": "2", "continue": token})
    assert [i["metadata"]["name"] for i in second["items"]] == ["c"]
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert "continue" not in second["metadata"]

    kube_api.store.compact()
    status, gone = await call(http, "GET", PODS, params={"limit": "2", "continue": token})
    assert status == 410
    assert gone["reason"] == "Expired"
    assert gone["metadata"]["continue"]  # the inconsistent continuation the server offers


async def test_list_resource_version_semantics(
    kube_api: FakeKubeApi, http: aiohttp.ClientSession
) -> None:
    kube_api.store.put(pod("a"))
    rv = kube_api.store.resource_version
    kube_api.store.delete("pods", "default", "a")

    _, exact = await call(
        http, "GET", PODS, params={"resourceVersion": str(rv), "resourceVersionMatch": "Exact"}
    )
    assert [i["metadata"]["name"] for i in exact["items"]] == ["a"]
    assert exact["metadata"]["resourceVersion"] == str(rv)

    status, ahead = await call(http, "GET", PODS, params={"resourceVersion": str(rv + 100)})
    assert status == 504
    assert ahead["reason"] == "Timeout"
    assert ahead["message"].startswith("Timeout: Too large resource version")
    assert ahead["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge"

    kube_api.store.compact()
    status, _ = await call(
        http, "GET", PODS, params={"resourceVersion": str(rv), "resourceVersionMatch": "Exact"}
    )
    assert status == 410


# ---- writes ----


async def test_create_sets_system_metadata_and_refuses_duplicates(
    kube_api: FakeKubeApi, http: aiohttp.ClientSession
) -> None:
    before = kube_api.store.resource_version
    status, created = await call(http, "POST", SPCPS, spcps("web-default-spc"))
    assert status == 201
    meta = created["metadata"]
    assert meta["namespace"] == "default" and meta["uid"] and meta["creationTimestamp"]
    assert int(meta["resourceVersion"]) == before + 1
    assert meta["generation"] == 1

    status, again = await call(http, "POST", SPCPS, spcps("web-default-spc"))
    assert status == 409
    assert again["reason"] == "AlreadyExists"
    assert again["details"]["kind"] == "secretproviderclasspodstatuses"


async def test_create_in_missing_namespace_and_invalid_names(http: aiohttp.ClientSession) -> None:
    path = f"/apis/{SPC_GROUP}/v1/namespaces/ghost/secretproviderclasspodstatuses"
    status, body = await call(http, "POST", path, spcps("x"))
    assert (status, body["message"]) == (404, 'namespaces "ghost" not found')

    status, body = await call(http, "POST", SPCPS, spcps("Not_A_Name"))
    assert status == 422
    assert body["details"]["causes"][0]["field"] == "metadata.name"


async def test_update_needs_the_current_resource_version(
    kube_api: FakeKubeApi, http: aiohttp.ClientSession
) -> None:
    _, created = await call(http, "POST", SPCPS, spcps("s"))
    changed = dict(created, status={**created["status"], "targetPath": "/a"})
    status, updated = await call(http, "PUT", f"{SPCPS}/s", changed)
    assert status == 200
    assert updated["metadata"]["generation"] == 2  # no status subresource: status is content

    status, stale = await call(http, "PUT", f"{SPCPS}/s", changed)
    assert status == 409
    assert stale["reason"] == "Conflict"
    assert "the object has been modified" in stale["message"]

    unversioned = json.loads(json.dumps(changed))
    del unversioned["metadata"]["resourceVersion"]
    status, refused = await call(http, "PUT", f"{SPCPS}/s", unversioned)
    assert status == 422  # custom resources do not allow unconditional updates
    assert refused["details"]["causes"][0]["field"] == "metadata.resourceVersion"


async def test_a_no_op_update_keeps_the_resource_version(
    kube_api: FakeKubeApi, http: aiohttp.ClientSession
) -> None:
    _, created = await call(http, "POST", SPCPS, spcps("s"))
    _, same = await call(http, "PUT", f"{SPCPS}/s", created)
    assert same["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


async def test_merge_json_and_strategic_patches(
    kube_api: FakeKubeApi, http: aiohttp.ClientSession
) -> None:
    await call(http, "POST", SPCPS, spcps("s", objects=[{"id": "a", "version": "1"}]))
    merge = {"Content-Type": "application/merge-patch+json"}
    _, patched = await call(
        http, "PATCH", f"{SPCPS}/s", {"status": {"mounted": False}}, headers=merge
    )
    assert patched["status"]["mounted"] is False
    assert patched["status"]["objects"] == [{"id": "a", "version": "1"}]

    ops = [{"op": "replace", "path": "/status/objects/0/version", "value": "2"}]
    _, patched = await call(
        http, "PATCH", f"{SPCPS}/s", ops, headers={"Content-Type": "application/json-patch+json"}
    )
    assert patched["status"]["objects"][0]["version"] == "2"

    strategic = {"Content-Type": "application/strategic-merge-patch+json"}
    status, refused = await call(http, "PATCH", f"{SPCPS}/s", {"status": {}}, headers=strategic)
    assert status == 415 and refused["reason"] == "UnsupportedMediaType"

    owner = kube_api.store.put(pod("web"))
    ref = owner_reference(owner)
    kube_api.store.put(pod("sidecar", owner_references=[ref]))
    other = {**ref, "uid": "u2", "name": "other"}
    body = {"metadata": {"ownerReferences": [other], "finalizers": ["x/y"]}}
    _, merged = await call(http, "PATCH", f"{PODS}/sidecar", body, headers=strategic)
    assert [r["uid"] for r in merged["metadata"]["ownerReferences"]] == [ref["uid"], "u2"]


async def test_patch_with_a_stale_resource_version_conflicts(
    kube_api: FakeKubeApi, http: aiohttp.ClientSession
) -> None:
    _, created = await call(http, "POST", SPCPS, spcps("s"))
    await call(
        http,
        "PATCH",
        f"{SPCPS}/s",
        {"status": {"mounted": False}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    stale = {"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]}}
    status, body = await call(
        http, "PATCH", f"{SPCPS}/s", stale, headers={"Content-Type": "application/merge-patch+json"}
    )
    assert (status, body["reason"]) == (409, "Conflict")


async def test_custom_resources_are_pruned_and_type_checked(
    kube_api: FakeKubeApi, http: aiohttp.ClientSession
) -> None:
    body = secret_provider_class("spc", parameters={"a": "b"})
    body["spec"]["unknown"] = "dropped"
    status, created = await call(http, "POST", SPCS, body)
    assert status == 201
    assert "unknown" not in created["spec"]

    wrong = secret_provider_class("bad")
    wrong["spec"]["parameters"] = {"count": 3}
    status, refused = await call(http, "POST", SPCS, wrong)
    assert status == 422
    cause = refused["details"]["causes"][0]
    assert cause == {
        "reason": "FieldValueTypeInvalid",
        "message": 'Invalid value: "integer": spec.parameters.count in body must be of type '
        'string: "integer"',
        "field": "spec.parameters.count",
    }
    assert refused["details"]["kind"] == "SecretProviderClass"

    kube_api.store.put(wrong)  # seeding skips admission: the agent must cope with it
    stored = kube_api.store.get("secretproviderclasses", "default", "bad")
    assert stored is not None and stored["spec"]["parameters"] == {"count": 3}


async def test_v1alpha1_and_v1_share_one_store(
    kube_api: FakeKubeApi, http: aiohttp.ClientSession
) -> None:
    alpha = f"/apis/{SPC_GROUP}/v1alpha1/namespaces/default/secretproviderclasses"
    body = secret_provider_class("old", parameters={"a": "b"}, version="v1alpha1")
    body["status"] = {"byPod": [{"id": "p", "namespace": "default"}]}
    async with http.post(alpha, json=body) as response:
        assert response.status == 201
        assert "deprecated" in response.headers["Warning"]

    _, as_v1 = await call(http, "GET", f"{SPCS}/old")
    assert as_v1["apiVersion"] == f"{SPC_GROUP}/v1"
    assert as_v1["status"] == {}  # v1 status has no fields: byPod is not served
    stored = kube_api.store.get("secretproviderclasses", "default", "old")
    assert stored is not None and stored["apiVersion"] == f"{SPC_GROUP}/v1"


# ---- delete, finalizers, garbage collection ----


async def test_delete_returns_status_or_object_and_checks_preconditions(
    kube_api: FakeKubeApi, http: aiohttp.ClientSession
) -> None:
    _, created = await call(http, "POST", SPCPS, spcps("s"))
    body = {"preconditions": {"uid": "other"}}
    status, refused = await call(http, "DELETE", f"{SPCPS}/s", body)
    assert status == 409 and refused["message"].endswith(
        f"Precondition failed: UID in precondition: other, UID in object meta: "
        f"{created['metadata']['uid']}"
    )
    status, deleted = await call(http, "DELETE", f"{SPCPS}/s")
    assert status == 200
    assert deleted["kind"] == "Status" and deleted["status"] == "Success"
    assert deleted["details"]["uid"] == created["metadata"]["uid"]

    kube_api.store.put(pod("gone", node=None))  # not scheduled: no grace period
    status, returned = await call(http, "DELETE", f"{PODS}/gone")
    assert status == 200 and returned["kind"] == "Pod"  # pods return the deleted object


async def test_pods_on_a_node_are_deleted_gracefully(
    kube_api: FakeKubeApi, http: aiohttp.ClientSession
) -> None:
    kube_api.store.put(pod("web"))
    _, terminating = await call(http, "DELETE", f"{PODS}/web")
    assert terminating["metadata"]["deletionTimestamp"]
    assert terminating["metadata"]["deletionGracePeriodSeconds"] == 30
    assert kube_api.store.get("pods", "default", "web") is not None

    await call(http, "DELETE", f"{PODS}/web", {"gracePeriodSeconds": 0})
    assert kube_api.store.get("pods", "default", "web") is None


async def test_finalizers_hold_deletion_until_removed(
    kube_api: FakeKubeApi, http: aiohttp.ClientSession
) -> None:
    body = spcps("s")
    body["metadata"]["finalizers"] = ["example.com/keep"]
    await call(http, "POST", SPCPS, body)
    _, pending = await call(http, "DELETE", f"{SPCPS}/s")
    assert pending["metadata"]["deletionTimestamp"]  # the object, not a Status

    patch = {"metadata": {"finalizers": None}}
    await call(
        http, "PATCH", f"{SPCPS}/s", patch, headers={"Content-Type": "application/merge-patch+json"}
    )
    assert kube_api.store.get("secretproviderclasspodstatuses", "default", "s") is None


async def test_owner_deletion_collects_dependents(
    kube_api: FakeKubeApi, http: aiohttp.ClientSession
) -> None:
    owner = kube_api.store.put(pod("web"))
    status_body = spcps("web-default-spc")
    status_body["metadata"]["ownerReferences"] = [owner_reference(owner)]
    await call(http, "POST", SPCPS, status_body)
    kept = spcps("orphan")
    kept["metadata"]["ownerReferences"] = [owner_reference(owner)]
    await call(http, "POST", SPCPS, kept)

    kube_api.store.delete("pods", "default", "web")

    assert kube_api.store.list("secretproviderclasspodstatuses") == []


async def test_orphan_propagation_keeps_dependents(
    kube_api: FakeKubeApi, http: aiohttp.ClientSession
) -> None:
    owner = kube_api.store.put(pod("web", node=None))
    body = spcps("s")
    body["metadata"]["ownerReferences"] = [owner_reference(owner)]
    await call(http, "POST", SPCPS, body)
    await call(http, "DELETE", f"{PODS}/web", {"propagationPolicy": "Orphan"})
    left = kube_api.store.get("secretproviderclasspodstatuses", "default", "s")
    assert left is not None and "ownerReferences" not in left["metadata"]


# ---- other resources ----


async def test_secrets_fold_string_data_into_data(
    kube_api: FakeKubeApi, http: aiohttp.ClientSession
) -> None:
    body = {"metadata": {"name": "s"}, "stringData": {"password": "hunter2"}}
    status, created = await call(http, "POST", "/api/v1/namespaces/default/secrets", body)
    assert status == 201
    assert created["data"] == {"password": "aHVudGVyMg=="}
    assert created["type"] == "Opaque" and "stringData" not in created


async def test_events_are_served_by_both_event_apis(
    kube_api: FakeKubeApi, http: aiohttp.ClientSession
) -> None:
    new_api = "/apis/events.k8s.io/v1/namespaces/default/events"
    incomplete = {"metadata": {"name": "e1"}, "reason": "X", "type": "Warning"}
    status, refused = await call(http, "POST", new_api, incomplete)
    assert status == 422
    assert {c["field"] for c in refused["details"]["causes"]} == {
        "eventTime",
        "reportingController",
        "reportingInstance",
        "action",
    }
    event = {
        "metadata": {"name": "web.1"},
        "eventTime": "2025-01-01T00:00:00.000000Z",
        "reportingController": "secrets-store.csi.k8s.io/agent",
        "reportingInstance": "agent-node-a",
        "action": "Mount",
        "reason": "FailedToMount",
        "type": "Warning",
        "note": "SecretProviderClass default/spc not found",
        "regarding": {"kind": "Pod", "namespace": "default", "name": "web", "uid": "u1"},
    }
    status, _ = await call(http, "POST", new_api, event)
    assert status == 201

    query = {"fieldSelector": "involvedObject.name=web,type=Warning"}
    _, core = await call(http, "GET", "/api/v1/namespaces/default/events", params=query)
    [legacy] = core["items"]
    assert legacy["message"] == event["note"]
    assert legacy["involvedObject"]["uid"] == "u1"
    assert legacy["reportingComponent"] == "secrets-store.csi.k8s.io/agent"


async def test_token_request_validation(kube_api: FakeKubeApi, http: aiohttp.ClientSession) -> None:
    kube_api.store.put(service_account("app"))
    kube_api.store.put(pod("web", service_account="other"))
    path = "/api/v1/namespaces/default/serviceaccounts/app/token"
    short = {"spec": {"audiences": ["vault"], "expirationSeconds": 60}}
    status, body = await call(http, "POST", path, short)
    assert status == 422 and "less than 10 minutes" in body["message"]

    bound = {"spec": {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "web"}}}
    status, body = await call(http, "POST", path, bound)
    assert status == 400 and "different serviceaccount" in body["message"]

    status, body = await call(http, "POST", path, {"spec": {}})
    assert status == 201
    assert body["kind"] == "TokenRequest"
    assert body["apiVersion"] == "authentication.k8s.io/v1"
    assert body["spec"]["expirationSeconds"] == 3600
    assert body["status"]["token"].count(".") == 2
    assert kube_api.issuer.issued[-1].service_account == "app"

    _, jwks = await call(http, "GET", "/openid/v1/jwks")
    assert jwks["keys"][0]["kid"] == kube_api.issuer.signer.key_id


async def test_binding_schedules_a_pod_once(
    kube_api: FakeKubeApi, http: aiohttp.ClientSession
) -> None:
    kube_api.store.put(pod("web", node=None))
    binding = {"target": {"kind": "Node", "name": "node-a"}}
    status, _ = await call(http, "POST", f"{PODS}/web/binding", binding)
    assert status == 201
    status, again = await call(http, "POST", f"{PODS}/web/binding", binding)
    assert status == 409 and again["reason"] == "Conflict"


async def test_pod_status_subresource_changes_only_status(
    kube_api: FakeKubeApi, http: aiohttp.ClientSession
) -> None:
    kube_api.store.put(pod("web"))
    patch = {"status": {"phase": "Failed"}, "metadata": {"labels": {"x": "y"}}}
    headers = {"Content-Type": "application/merge-patch+json"}
    status, body = await call(http, "PATCH", f"{PODS}/web/status", patch, headers=headers)
    assert status == 200
    assert body["status"]["phase"] == "Failed"
    assert "labels" not in body["metadata"]

    _, spec_change = await call(
        http, "PATCH", f"{PODS}/web", {"status": {"phase": "Running"}}, headers=headers
    )
    assert spec_change["status"]["phase"] == "Failed"  # main resource ignores status


# ---- watches ----


async def test_watch_sends_changes_after_a_version_and_bookmarks(
    kube_api: FakeKubeApi, http: aiohttp.ClientSession
) -> None:
    start = kube_api.store.resource_version
    kube_api.store.put(pod("a", node="node-a"))
    kube_api.store.put(pod("b", node="node-b"))
    kube_api.store.patch("pods", "default", "a", {"status": {"phase": "Failed"}})
    kube_api.store.delete("pods", "default", "a")

    reader = asyncio.ensure_future(
        watch_events(
            http,
            "/api/v1/pods",
            4,
            resourceVersion=str(start),
            fieldSelector="spec.nodeName=node-a",
            allowWatchBookmarks="true",
        )
    )
    await kube_api.store.wait_for_watchers("pods")
    kube_api.store.bookmark()
    events = await reader

    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]
    deleted = events[2]["object"]
    assert int(deleted["metadata"]["resourceVersion"]) > int(
        events[1]["object"]["metadata"]["resourceVersion"]
    )
    assert events[3]["object"] == {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "resourceVersion": str(kube_api.store.resource_version),
            "creationTimestamp": None,
        },
    }


async def test_watch_without_version_starts_with_synthetic_added_events(
    kube_api: FakeKubeApi, http: aiohttp.ClientSession
) -> None:
    kube_api.store.put(pod("a"))
    events = await watch_events(http, PODS, 1, timeoutSeconds="1")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "a")]


async def test_objects_leaving_a_selection_arrive_as_deleted(
    kube_api: FakeKubeApi, http: aiohttp.ClientSession
) -> None:
    kube_api.store.put(pod("web", node=None))
    start = kube_api.store.resource_version
    await call(http, "POST", f"{PODS}/web/binding", {"target": {"name": "node-a"}})
    kube_api.store.patch("pods", "default", "web", {"metadata": {"labels": {"gone": "1"}}})
    events = await watch_events(
        http,
        PODS,
        2,
        resourceVersion=str(start),
        fieldSelector="spec.nodeName=node-a",
        labelSelector="!gone",
    )
    assert [e["type"] for e in events] == ["ADDED", "DELETED"]


async def test_watch_from_a_compacted_version_gets_an_error_event(
    kube_api: FakeKubeApi, http: aiohttp.ClientSession
) -> None:
    start = kube_api.store.resource_version
    kube_api.store.put(pod("a"))
    kube_api.store.compact()
    [event] = await watch_events(http, PODS, 5, resourceVersion=str(start))
    assert event["type"] == "ERROR"
    assert event["object"]["code"] == 410 and event["object"]["reason"] == "Expired"
    assert event["object"]["message"].startswith(f"too old resource version: {start}")


async def test_history_limit_compacts_automatically(tmp_path: Any) -> None:
    async with FakeKubeApi.running(tmp_path, history_limit=2) as kube:
        start = kube.store.resource_version
        for name in ("a", "b", "c"):
            kube.store.put(pod(name))
        assert kube.store.raw.compacted > start


async def test_watch_ends_at_timeout_seconds(
    kube_api: FakeKubeApi, http: aiohttp.ClientSession
) -> None:
    rv = str(kube_api.store.resource_version)
    events = await watch_events(http, PODS, 1, resourceVersion=rv, timeoutSeconds="0")
    assert events == []
    assert kube_api.store.watchers() == 0


async def test_send_initial_events_ends_with_an_annotated_bookmark(
    kube_api: FakeKubeApi, http: aiohttp.ClientSession
) -> None:
    kube_api.store.put(pod("a"))
    events = await watch_events(
        http,
        PODS,
        2,
        sendInitialEvents="true",
        resourceVersionMatch="NotOlderThan",
        allowWatchBookmarks="true",
    )
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    annotations = events[1]["object"]["metadata"]["annotations"]
    assert annotations == {"k8s.io/initial-events-end": "true"}


async def test_after_an_etcd_restore_a_watch_from_a_newer_version_stays_silent(
    kube_api: FakeKubeApi, http: aiohttp.ClientSession
) -> None:
    """The watch cache's rule (cacheWatcher.process): a plain watch from a version the store
    has not reached is accepted and gets nothing (no event, no bookmark) until the store
    passes it; a list "not older than" it gets 504 Too large; a watch-list gets that Status
    as an ERROR event."""
    kube_api.store.put(pod("a"))
    backup = kube_api.store.backup()
    kube_api.store.put(pod("b"))
    kube_api.store.put(pod("c"))
    ahead = kube_api.store.resource_version
    restored = kube_api.store.restore(backup)
    assert restored == ahead - 2 and kube_api.store.get("pods", "default", "b") is None
    reader = asyncio.ensure_future(
        watch_events(http, PODS, 2, resourceVersion=str(ahead), allowWatchBookmarks="true")
    )
    await kube_api.store.wait_for_watchers("pods")
    kube_api.store.put(pod("d"))  # numbered ahead - 1: older than the watch's version
    kube_api.store.bookmark()
    kube_api.store.put(pod("e"))  # numbered ahead: still not newer
    kube_api.store.put(pod("f"))
    kube_api.store.bookmark()
    events = await reader
    assert [(e["type"], e["object"]["metadata"].get("name")) for e in events] == [
        ("ADDED", "f"),
        ("BOOKMARK", None),
    ]

    too_far = {"resourceVersion": str(ahead + 5), "resourceVersionMatch": "NotOlderThan"}
    status, body = await call(http, "GET", PODS, params={**too_far, "limit": "1"})
    assert status == 504 and body["reason"] == "Timeout" and body["code"] == 504
    assert body["message"] == (
        f"Timeout: Too large resource version: {ahead + 5}, current: {ahead + 1}"
    )
    assert body["details"]["causes"] == [
        {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}
    ]
    [event] = await watch_events(
        http, PODS, 3, sendInitialEvents="true", allowWatchBookmarks="true", **too_far
    )
    assert event["type"] == "ERROR" and event["object"]["code"] == 504
    assert event["object"]["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge"


async def test_a_restore_with_bumped_and_compacted_revisions_expires_old_watches(
    kube_api: FakeKubeApi, http: aiohttp.ClientSession
) -> None:
    """etcdutl snapshot restore --bump-revision N --mark-compacted: versions never go back,
    and every version clients held is compacted, so their watches get 410 and relist."""
    backup = kube_api.store.backup()
    kube_api.store.put(pod("a"))
    held = kube_api.store.resource_version
    restored = kube_api.store.restore(backup, bump_revision=1000, mark_compacted=True)
    assert restored > held
    [event] = await watch_events(http, PODS, 2, resourceVersion=str(held))
    assert event["type"] == "ERROR" and event["object"]["code"] == 410


# ---- faults, outages, authentication, request log ----


async def test_injected_errors_and_retry_after(
    kube_api: FakeKubeApi, http: aiohttp.ClientSession
) -> None:
    fault = kube_api.faults.fail(500, verb="create", resource="secretproviderclasspodstatuses")
    kube_api.faults.throttle(retry_after=3, verb="list", resource="pods")

    status, body = await call(http, "POST", SPCPS, spcps("s"))
    assert (status, body["reason"]) == (500, "InternalError")
    status, _ = await call(http, "POST", SPCPS, spcps("s"))
    assert status == 201 and fault.hits == 1  # times=1

    async with http.get(PODS) as response:
        assert response.status == 429
        assert response.headers["Retry-After"] == "3"
        assert (await response.json())["details"]["retryAfterSeconds"] == 3


async def test_held_requests_wait_for_release(
    kube_api: FakeKubeApi, http: aiohttp.ClientSession
) -> None:
    held = kube_api.faults.hold(verb="get", resource="secretproviderclasses")
    kube_api.store.put(secret_provider_class("spc"))
    request = asyncio.ensure_future(call(http, "GET", f"{SPCS}/spc"))
    await held.wait_held()
    assert not request.done()
    held.release()
    status, _ = await request
    assert status == 200


async def test_dropped_watches_end_mid_stream(
    kube_api: FakeKubeApi, http: aiohttp.ClientSession
) -> None:
    kube_api.store.put(pod("a"))
    kube_api.store.put(pod("b"))
    kube_api.faults.drop_watch(resource="pods", after_events=1)
    events = await watch_events(http, PODS, 5)
    assert len(events) == 1

    reader = asyncio.ensure_future(watch_events(http, PODS, 5, resourceVersion="1"))
    await kube_api.store.wait_for_watchers("pods")
    assert kube_api.store.drop_watches("pods", reset=True) == 1
    with pytest.raises(aiohttp.ClientPayloadError):
        await reader


async def test_api_down_refuses_connections_then_comes_back(
    kube_api: FakeKubeApi, http: aiohttp.ClientSession
) -> None:
    kube_api.store.put(pod("a"))
    await kube_api.down()
    with pytest.raises(aiohttp.ClientConnectorError):
        await call(http, "GET", PODS)
    kube_api.store.put(pod("b"))  # the cluster lives on while its API is unreachable
    await kube_api.up()
    _, body = await call(http, "GET", PODS)
    assert [item["metadata"]["name"] for item in body["items"]] == ["a", "b"]


async def test_request_log_records_what_clients_sent(
    kube_api: FakeKubeApi, http: aiohttp.ClientSession
) -> None:
    mark = kube_api.requests.mark()
    await call(http, "GET", f"{SPCS}/x", headers={"User-Agent": "secrets-store-agent/0.1"})
    await call(http, "POST", SPCPS, spcps("s"))
    [get] = kube_api.requests.since(mark, verb="get")
    assert get.resource == "secretproviderclasses" and get.status == 404
    assert get.user_agent == "secrets-store-agent/0.1"
    assert kube_api.requests.count(verb="create", status=201) == 1


@pytest.mark.parametrize("kube_api_options", [{"token": "s3cret", "tls": True}])
async def test_tls_and_bearer_token(kube_api: FakeKubeApi) -> None:
    import ssl

    context = ssl.create_default_context(cafile=str(kube_api.tls.ca_path))  # type: ignore[union-attr]
    assert kube_api.url.startswith("https://")
    async with aiohttp.ClientSession(
        kube_api.url, connector=aiohttp.TCPConnector(ssl=context)
    ) as session:
        status, body = await call(session, "GET", PODS)
        assert (status, body["reason"]) == (401, "Unauthorized")
        status, _ = await call(session, "GET", PODS, headers={"Authorization": "Bearer s3cret"})
        assert status == 200
        status, _ = await call(session, "GET", "/version")
        assert status == 200


async def test_reset_connection_fault_answers_nothing(
    kube_api: FakeKubeApi, http: aiohttp.ClientSession
) -> None:
    # aiohttp retries an idempotent request once on a reused connection: reset both tries.
    fault = kube_api.faults.reset_connection(verb="list", resource="pods", times=None)
    with pytest.raises(aiohttp.ClientError):
        await call(http, "GET", PODS)
    kube_api.faults.remove(fault)
    status, _ = await call(http, "GET", PODS)
    assert status == 200
    statuses = [r.status for r in kube_api.requests.filter(verb="list")]
    assert statuses[-1] == 200 and set(statuses[:-1]) == {0}


async def test_put_with_another_uid_recreates_the_object(kube_api: FakeKubeApi) -> None:
    first = kube_api.store.put(pod("web-0", uid="uid-1"))
    again = kube_api.store.put(pod("web-0", uid="uid-1", phase="Failed"))
    assert again["metadata"]["creationTimestamp"] == first["metadata"]["creationTimestamp"]
    recreated = kube_api.store.put(pod("web-0", uid="uid-2"))
    assert recreated["metadata"]["uid"] == "uid-2"


@pytest.mark.parametrize(
    "kube_api_options", [{"bookmark_interval": 0.05, "bookmark_before_end": 0.02}]
)
async def test_periodic_bookmarks_wait_for_the_resources_watch_cache_to_move(
    kube_api: FakeKubeApi, http: aiohttp.ClientSession
) -> None:
    """The watch cache's rule (kube-apiserver 1.27 to 1.34): every interval a watch is offered
    a bookmark at the version its resource's cache has reached, sent only when that is newer
    than the watch's start. A write to another resource does not move it, so that watch hears
    nothing for its whole timeout; a change to the resource outside the watch's selection
    does, and so does etcd's progress notification."""
    start = str(kube_api.store.resource_version)
    kube_api.store.put(secret("other", string_data={"a": "b"}))  # another resource
    node_a = {"fieldSelector": "spec.nodeName=node-a", "allowWatchBookmarks": "1"}
    quiet = await watch_events(http, PODS, 1, resourceVersion=start, timeoutSeconds="1", **node_a)
    assert quiet == []

    kube_api.store.put(pod("elsewhere", node="node-b"))  # a pod, outside the selection
    moved = kube_api.store.resource_version
    [event] = await watch_events(http, PODS, 1, resourceVersion=start, **node_a)
    assert event["type"] == "BOOKMARK"
    assert event["object"]["metadata"]["resourceVersion"] == str(moved)

    kube_api.store.put(secret("another", string_data={"a": "b"}))
    kube_api.store.progress()
    [event] = await watch_events(http, PODS, 1, resourceVersion=str(moved), **node_a)
    assert event["object"]["metadata"]["resourceVersion"] == str(kube_api.store.resource_version)
