"""Pure pieces of Kubernetes mode: backoff, rate limits, API error translation, resource paths,
SecretProviderClass and pod decoding, the token refresh helper."""

from __future__ import annotations

import asyncio
import errno
import json
import random
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from grpclib.const import Status

from agent import errors
from agent.aio.backoff import Backoff, BackoffPolicy
from agent.aio.ratelimit import TokenBucket
from agent.core.identity import refreshed_identity
from agent.csi.status import to_grpc_error
from agent.k8s.api import KubeApi
from agent.k8s.api_errors import (
    from_exception,
    from_response,
    from_status_object,
    lost_connection,
)
from agent.k8s.identity import token_expiry
from agent.k8s.pod_statuses import KubePodStatusStore
from agent.k8s.pods import decode_pod
from agent.k8s.resources import PODS, SPC_V1
from agent.k8s.spcs import UnusableClass, decode_class
from agent.model import PodIdentity, PodStatus, SecretProviderClass, ServiceAccountToken


def test_backoff_grows_with_jitter_caps_and_resets() -> None:
    backoff = Backoff(
        BackoffPolicy(initial=1.0, maximum=8.0, factor=2.0, jitter=0.5),
        random.Random(1),  # noqa: S311
    )
    delays = [backoff.next_delay() for _ in range(6)]
    ceilings = [1, 2, 4, 8, 8, 8]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert backoff.next_delay(at_least=20.0) == 20.0  # the server's Retry-After wins
    backoff.reset()
    assert backoff.next_delay() <= 1.0


def test_token_bucket_spends_burst_then_paces_and_refunds_cancelled_waits() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=10.0, burst=2, clock=lambda: now[0])
    assert [bucket.reserve(), bucket.reserve()] == [0.0, 0.0]
    assert bucket.reserve() == pytest.approx(0.1)
    assert bucket.reserve() == pytest.approx(0.2)  # callers queue in arrival order
    now[0] = 1.0
    assert bucket.try_take()  # refilled (capped at the burst)
    assert TokenBucket(rate=0, burst=1).reserve() == 0.0  # 0 qps: unlimited


async def test_token_bucket_cancelled_waiter_gives_its_token_back() -> None:
    bucket = TokenBucket(rate=0.001, burst=1)
    await bucket.acquire()
    waiter = asyncio.create_task(bucket.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert bucket.reserve() > 0  # one debt (ours), not two


def _status(code: int, reason: str, message: str) -> bytes:
    return json.dumps(
        {"kind": "Status", "code": code, "reason": reason, "message": message}
    ).encode()


@pytest.mark.parametrize(
    ("code", "reason", "cls"),
    [
        (404, "NotFound", errors.ApiNotFound),
        (409, "AlreadyExists", errors.ApiAlreadyExists),
        (409, "Conflict", errors.ApiConflict),
        (401, "Unauthorized", errors.ApiForbidden),
        (403, "Forbidden", errors.ApiForbidden),
        (410, "Expired", errors.ApiGone),
        (422, "Invalid", errors.ApiInvalid),
        (500, "InternalError", errors.ApiUnavailable),
        (503, "ServiceUnavailable", errors.ApiUnavailable),
        (429, "TooManyRequests", errors.ApiThrottled),
        (418, "Teapot", errors.KubernetesApiError),
    ],
)
def test_every_status_becomes_one_project_error(
    code: int, reason: str, cls: type[errors.KubernetesApiError]
) -> None:
    error = from_response("get pods ns/x", code, _status(code, reason, "why"), {})
    assert type(error) is cls
    assert error.status == code
    assert error.message.startswith(f"get pods ns/x: HTTP {code} {reason}: why")


def test_error_messages_quote_only_a_truncated_scrubbed_status_message() -> None:
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    body = _status(422, "Invalid", f"token {jwt} " + "x" * 500)
    error = from_response("create secrets ns/s", 422, body, {})
    assert jwt not in error.message
    assert len(error.message) < 300
    # A body that is not a Status (e.g. an echoed object with data) is never quoted.
    echoed = json.dumps({"kind": "Secret", "data": {"password": "aHVudGVyMg=="}}).encode()
    assert "aHVudGVy" not in from_response("get secrets ns/s", 500, echoed, {}).message


def test_throttling_carries_retry_after_and_maps_to_unavailable() -> None:
    error = from_response("list pods", 429, b"", {"Retry-After": "7"})
    assert isinstance(error, errors.ApiThrottled)
    assert error.retry_after == 7.0
    assert to_grpc_error(error).status == Status.UNAVAILABLE
    reworded = error.reworded("failed to get secretproviderclass a/b: x", reason="SPCNotFound")
    assert isinstance(reworded, errors.ApiThrottled)
    assert (reworded.retry_after, reworded.reason) == (7.0, "SPCNotFound")


def test_watch_error_events_and_connection_failures_translate_too() -> None:
    gone = from_status_object("watch pods", {"kind": "Status", "code": 410, "reason": "Expired"})
    assert isinstance(gone, errors.ApiGone)
    refused = from_exception("get pods a/b", ConnectionRefusedError("Connection refused"))
    assert isinstance(refused, errors.ApiUnavailable)
    assert "Connection refused" in refused.message
    assert from_exception("get pods a/b", TimeoutError()).message == "get pods a/b: timed out"
    cut = aiohttp.ClientPayloadError(
        "Response payload is not completed: <TransferEncodingError: 400, message='Not enough "
        "data to satisfy transfer length header.'>"
    )
    assert from_exception("watch pods (all)", cut).message == (
        "watch pods (all): the connection closed in the middle of the answer"
    )


@pytest.mark.parametrize(
    ("socket_error", "how", "says"),
    [
        (aiohttp.ClientOSError(errno.ETIMEDOUT, "Connection timed out"), "keepalive",
         "the API server stopped answering TCP keepalive probes (the connection timed out)"),
        (aiohttp.ClientOSError(errno.ECONNRESET, "Connection reset by peer"), "reset",
         "the API server reset the connection"),
        (aiohttp.ClientOSError(errno.EHOSTUNREACH, "No route to host"), "closed",
         "the connection closed in the middle of the answer (No route to host)"),
        (None, "closed", "the connection closed in the middle of the answer"),
    ],
    ids=["keepalive", "reset", "other", "no-error"],
)  # fmt: skip
def test_a_watch_cut_short_says_how_from_the_sockets_error(
    socket_error: OSError | None, how: str, says: str
) -> None:
    error = lost_connection("watch pods (all)", socket_error)
    assert (error.how, error.message) == (how, f"watch pods (all): {says}")
    reworded = error.reworded("cannot watch: x")
    assert isinstance(reworded, errors.ApiConnectionLost) and reworded.how == how


TOO_LARGE_CAUSE = {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}


@pytest.mark.parametrize(
    ("status", "too_large"),
    [
        ({"message": "Timeout: Too large resource version: 9, current: 7"}, False),
        ({"details": {"causes": [TOO_LARGE_CAUSE], "retryAfterSeconds": 1}}, True),
        ({"details": {"causes": [{"message": "Too large resource version"}]}}, True),
        ({"reason": "Timeout", "message": "Too large resource version: 9, current: 7"}, True),
        ({"reason": "Timeout", "message": "Timeout: request did not complete"}, False),
    ],
    ids=["no-cause-no-reason", "cause-type", "1.17-cause-text", "pre-1.17-message", "timeout"],
)
def test_too_large_resource_version_is_told_apart_as_client_go_does(
    status: dict[str, object], too_large: bool
) -> None:
    """apimachinery's NewTooLargeResourceVersionError (504 Timeout + ResourceVersionTooLarge
    cause), and the shapes older servers sent, which client-go's reflector also accepts."""
    body = {"kind": "Status", "code": 504, **status}
    error = from_response("list pods", 504, json.dumps(body).encode(), {"Retry-After": "1"})
    assert isinstance(error, errors.ApiUnavailable)  # callers that retry keep retrying
    assert isinstance(error, errors.ApiTooLargeResourceVersion) is too_large
    in_stream = from_status_object("watch pods", body)  # the ERROR event of a watch-list
    assert isinstance(in_stream, errors.ApiTooLargeResourceVersion) is too_large


def test_collections_are_described_with_their_selectors() -> None:
    assert PODS.describe() == "pods (all)"
    assert PODS.describe("ns") == "pods in ns"
    node = {"fieldSelector": "spec.nodeName=node-a"}
    assert PODS.describe(selectors=node) == "pods (spec.nodeName=node-a)"
    assert PODS.describe("ns", selectors={"labelSelector": "a=b"}) == "pods in ns (a=b)"
    assert PODS.describe("ns", "web-0") == "pods ns/web-0"


def test_resource_paths_quote_names() -> None:
    assert PODS.path() == "/api/v1/pods"
    assert PODS.path("ns", "p", "status") == "/api/v1/namespaces/ns/pods/p/status"
    assert SPC_V1.path("ns", "other/x") == (
        "/apis/secrets-store.csi.x-k8s.io/v1/namespaces/ns/secretproviderclasses/other%2Fx"
    )


def _spc(spec: object, api_version: str = "secrets-store.csi.x-k8s.io/v1") -> dict[str, object]:
    return {
        "apiVersion": api_version,
        "kind": "SecretProviderClass",
        "metadata": {"name": "app", "namespace": "ns", "uid": "u-1", "generation": 3},
        "spec": spec,
    }


def test_decode_class_reads_v1_and_v1alpha1_and_names_bad_fields() -> None:
    spec = {"provider": "vault", "parameters": {"roleName": "r"}}
    for version in ("v1", "v1alpha1"):
        decoded = decode_class(_spc(spec, f"secrets-store.csi.x-k8s.io/{version}"))
        assert isinstance(decoded, SecretProviderClass)
        assert (decoded.provider, decoded.uid, decoded.generation) == ("vault", "u-1", 3)
    bad = decode_class(_spc({"provider": "vault", "parameters": {"ttl": 30}}))
    assert isinstance(bad, UnusableClass)
    assert bad.reason.startswith(
        'spec.parameters.ttl: Invalid value: "integer": must be of type string'
    )
    bad_objects = decode_class(_spc({"provider": "v", "secretObjects": "x"}))
    assert isinstance(bad_objects, UnusableClass)
    assert "spec.secretObjects" in bad_objects.reason
    item_without_kind = _spc(spec)
    del item_without_kind["kind"], item_without_kind["apiVersion"]
    assert isinstance(decode_class(item_without_kind), SecretProviderClass)


def test_decoded_classes_share_their_parameter_and_secret_object_keys() -> None:
    """Every class in the cluster is cached: the keys each JSON parse copies are interned
    (docs/benchmarks.md, SecretProviderClass cache size)."""
    spec = {
        "provider": "vault",
        "parameters": {"roleName": "r", "vaultAddress": "https://vault:8200"},
        "secretObjects": [
            {"secretName": "s", "type": "Opaque", "data": [{"objectName": "k", "key": "k"}]}
        ],
    }
    first, second = (decode_class(json.loads(json.dumps(_spc(spec)))) for _ in range(2))
    assert isinstance(first, SecretProviderClass) and isinstance(second, SecretProviderClass)
    assert first == second

    def keys(spc: SecretProviderClass) -> list[str]:
        (item,) = spc.secret_objects
        data = item["data"]
        assert isinstance(data, list)
        return [*spc.parameters, *item, *data[0]]

    assert all(a is b for a, b in zip(keys(first), keys(second), strict=True))


def test_decode_pod_keeps_only_what_the_agent_needs() -> None:
    pod = decode_pod(
        {
            "metadata": {
                "name": "web-0",
                "namespace": "ns",
                "uid": "u",
                "deletionTimestamp": "2030-01-01T00:00:00Z",
                "ownerReferences": [
                    {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "o"}
                ],
            },
            "spec": {"serviceAccountName": "sa", "nodeName": "n"},
            "status": {"phase": "Succeeded"},
        }
    )
    assert pod is not None
    assert (pod.terminating, pod.finished, pod.service_account) == (True, True, "sa")
    assert pod.owners[0].kind == "StatefulSet"
    assert decode_pod({"metadata": {"name": "x"}}) is None


class _Minter:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def mint(self, pod: PodIdentity, audience: str) -> ServiceAccountToken:
        self.calls.append(audience)
        return ServiceAccountToken("fresh", datetime.now(UTC) + timedelta(hours=1))


async def test_refreshed_identity_mints_only_expiring_tokens_and_only_when_enabled() -> None:
    now = datetime.now(UTC)
    identity = PodIdentity(
        "ns",
        "p",
        "u",
        "sa",
        {
            "vault": ServiceAccountToken("old", now + timedelta(seconds=30)),
            "aws": ServiceAccountToken("ok", now + timedelta(hours=1)),
        },
    )
    assert await refreshed_identity(identity, None, now) is identity
    minter = _Minter()
    refreshed = await refreshed_identity(identity, minter, now)
    assert minter.calls == ["vault"]
    assert refreshed.tokens["vault"].token == "fresh"
    assert refreshed.tokens["aws"].token == "ok"


def test_token_request_expiry_is_always_comparable_with_now() -> None:
    now = datetime.now(UTC)
    for text in ("2030-01-01T00:00:00Z", "2030-01-01T00:00:00", "2030-01-01T01:00:00+01:00"):
        expiry = token_expiry(text)
        assert expiry is not None and expiry - now > timedelta(0)  # naive would raise here
    assert token_expiry("soon") is None and token_expiry(None) is None


@pytest.mark.parametrize("name", ["web..0-default-app", "web.-0-default-app", "w" * 254])
def test_a_pod_status_name_the_api_server_would_refuse_is_not_queued(name: str) -> None:
    """The API server's subdomain rule (``agent.documents.names``), not a looser copy: before,
    the first two were queued, to be refused by the server at every attempt."""
    statuses = KubePodStatusStore(KubeApi(), "node-a")
    target = "/var/lib/kubelet/pods/uid-1/volumes/kubernetes.io~csi/secrets/mount"
    status = PodStatus(name, "default", "web", "uid-1", "app", target, "node-a", True, ())
    with pytest.raises(errors.StatusError, match="not a valid object name"):
        statuses.want(status)
