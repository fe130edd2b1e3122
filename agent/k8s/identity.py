"""Pod identity through the API: service-account annotations, and pod-bound tokens.

``KubeServiceAccounts`` implements ``ports.ServiceAccountSource`` with one direct read per
service account, shared by the callers that ask while it runs and kept for a minute (cloud
providers ask on every publish; the annotation that names a role rarely changes).
``KubeTokenMinter`` implements ``ports.ServiceAccountTokenMinter`` with a TokenRequest bound to
the pod, as kubelet's own ``tokenRequests`` are (off unless ``--token-request-fallback`` is set).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from agent.documents.names import shown_name
from agent.errors import ApiNotFound, KubernetesApiError, ProviderError, ServiceAccountNotFound
from agent.k8s.api import KubeApi, Lane
from agent.k8s.resources import SERVICE_ACCOUNTS
from agent.model import PodIdentity, ServiceAccountToken

CACHE_SECONDS = 60.0
CACHE_ENTRIES = 1024
TOKEN_SECONDS = 3600  # the API's minimum is 600


class KubeServiceAccounts:
    def __init__(self, api: KubeApi, clock: Callable[[], float] = time.monotonic) -> None:
        self._api = api
        self._clock = clock
        self._cache: OrderedDict[tuple[str, str], tuple[float, dict[str, str]]] = OrderedDict()
        # Reads under way: the publishes of many pods of one account (a node's start, a
        # scale-up) share one GET instead of each spending the publish lane's budget.
        self._reading: dict[tuple[str, str], asyncio.Task[dict[str, str]]] = {}

    async def annotations(self, namespace: str, name: str) -> Mapping[str, str]:
        key = (namespace, name)
        cached = self._cache.get(key)
        if cached is not None and self._clock() - cached[0] < CACHE_SECONDS:
            return cached[1]
        reading = self._reading.get(key)
        if reading is None:
            reading = asyncio.create_task(self._read(key), name=f"serviceaccount-{name}")
            self._reading[key] = reading
            reading.add_done_callback(lambda done: self._read_done(key, done))
        # A caller that gives up (kubelet's deadline) leaves the read to the others.
        return await asyncio.shield(reading)

    def _read_done(self, key: tuple[str, str], done: asyncio.Task[dict[str, str]]) -> None:
        self._reading.pop(key, None)
        if not done.cancelled():
            done.exception()  # retrieved: a read every caller gave up on logs no warning

    async def _read(self, key: tuple[str, str]) -> dict[str, str]:
        (namespace, name), now = key, self._clock()
        ref = f"{namespace}/{shown_name(name)}"
        try:
            document = await self._api.get(SERVICE_ACCOUNTS, namespace, name, Lane.PUBLISH)
        except ApiNotFound:
            raise ServiceAccountNotFound(f"serviceaccount {ref} not found") from None
        except KubernetesApiError as err:
            raise err.reworded(f"cannot read serviceaccount {ref}: {err.message}") from None
        metadata = document.get("metadata")
        raw = metadata.get("annotations") if isinstance(metadata, dict) else None
        annotations = {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
        self._cache[key] = (now, annotations)
        self._cache.move_to_end(key)
        while len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return annotations


class KubeTokenMinter:
    def __init__(self, api: KubeApi, seconds: int = TOKEN_SECONDS) -> None:
        self._api = api
        self._seconds = seconds

    async def mint(self, pod: PodIdentity, audience: str) -> ServiceAccountToken:
        if not pod.service_account:
            raise ProviderError(
                f"cannot request a token for pod {pod.namespace}/{pod.name}: its service "
                "account name is unknown (csi.storage.k8s.io/serviceAccount.name not sent)"
            )
        request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                # An empty audience means the API server's own, as in kubelet's token map.
                "audiences": [audience] if audience else [],
                "expirationSeconds": self._seconds,
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": pod.name,
                    "uid": pod.uid,
                },
            },
        }
        what = f"serviceaccount {pod.namespace}/{shown_name(pod.service_account)}"
        try:
            answer = await self._api.create_subresource(
                SERVICE_ACCOUNTS,
                pod.namespace,
                pod.service_account,
                sub="token",
                body=request,
                lane=Lane.PUBLISH,
            )
        except KubernetesApiError as err:
            raise err.reworded(f"cannot request a token for {what}: {err.message}") from None
        status = answer.get("status")
        status = status if isinstance(status, dict) else {}  # a broken server's answer
        token, expiry = status.get("token"), status.get("expirationTimestamp")
        if not isinstance(token, str) or not token:
            raise ProviderError(f"the token request for {what} returned no token")
        return ServiceAccountToken(token=token, expires_at=token_expiry(expiry))


def token_expiry(value: object) -> datetime | None:
    """A TokenRequest's ``expirationTimestamp``, zone-aware (UTC when it has none); None
    when it is absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)  # the API's zone
