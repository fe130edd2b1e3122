"""SecretProviderClasses from the API: a cluster-wide cache, looked up per namespace.

The cache is filled before the CSI socket serves (the first publish after a start reads
nothing from the API, as upstream's informer, §2) and kept current by a watch. A class the
cache does not hold yet (created a moment ago) is read directly: on the publish lane for
kubelet's calls, on the background lane for work kubelet does not wait on (``background``:
secret sync, its re-sync loop, the rotation scheduler), so that work never spends the budget a
publish waits for. Lookups are always in the pod's own namespace (upstream §3.5 step 8): a
class in another namespace is never found.

The cache holds every class in the cluster, as upstream's, with no cap: a class left out would
not be watched (no re-sync on a ``secretObjects`` edit, no rotation on a class edit). Its cost,
about 2.5 KiB per class of a few objects, is measured in docs/benchmarks.md.

v1 and v1alpha1: the API server serves the same stored objects under both versions, so the
cache watches v1, or v1alpha1 on a cluster whose CRD predates v1.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog

from agent.documents.names import is_subdomain, shown_name, subdomain_problem
from agent.documents.spc import InvalidDocument, decode, identity, is_spc
from agent.errors import (
    ApiNotFound,
    InvalidRequest,
    InvalidSecretProviderClass,
    KubernetesApiError,
    SecretProviderClassNotFound,
)
from agent.k8s.api import KubeApi, Lane, Object
from agent.k8s.informer import Informer
from agent.k8s.informer_cache import Key
from agent.k8s.informer_settings import InformerSettings
from agent.k8s.resources import SPC_V1, SPC_V1ALPHA1, Resource
from agent.model import SecretProviderClass
from agent.ports import ChangeListener

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class UnusableClass:
    """An object that exists but does not decode; ``get`` reports ``reason``."""

    namespace: str
    name: str
    reason: str


CacheEntry = SecretProviderClass | UnusableClass


def decode_class(document: Object) -> CacheEntry:
    """An API object → a SecretProviderClass, or why it cannot be used."""
    kind_and_version = {"kind": "SecretProviderClass", "apiVersion": SPC_V1.api_version}
    # List items may omit kind/apiVersion; a watch or get names whichever version was asked.
    merged = {**kind_and_version, **document} if "kind" not in document else document
    if not is_spc(merged):
        raise InvalidDocument(f"not a SecretProviderClass: {merged.get('apiVersion')}")
    key, _ = identity(merged, default_namespace="")
    try:
        return decode(merged, "", _uid, _generation)
    except InvalidDocument as err:
        return UnusableClass(key[0], key[1], err.reason)


def _uid(metadata: Mapping[str, object], _key: object) -> str:
    uid = metadata.get("uid")
    return uid if isinstance(uid, str) else ""


def _generation(metadata: Mapping[str, object], _key: object) -> int:
    generation = metadata.get("generation")
    return generation if isinstance(generation, int) else 0


async def served_resource(api: KubeApi) -> Resource:
    """v1 when the server serves it, else v1alpha1 (a CRD from before v1); v1 when discovery
    fails (the cache then reports the real error in /readyz)."""
    try:
        if await api.served(SPC_V1, Lane.BACKGROUND):
            return SPC_V1
        if await api.served(SPC_V1ALPHA1, Lane.BACKGROUND):
            log.warning("k8s.spc_v1alpha1", note="the cluster serves only v1alpha1 of the CRD")
            return SPC_V1ALPHA1
    except KubernetesApiError as err:
        log.warning("k8s.discovery_failed", group=SPC_V1.group, error=err.message)
    return SPC_V1


class KubeSecretProviderClassSource:
    """Implements ``ports.SecretProviderClassSource``; ``informer`` runs under the adapter."""

    def __init__(
        self, api: KubeApi, resource: Resource = SPC_V1, settings: InformerSettings | None = None
    ) -> None:
        self._api = api
        self.resource = resource
        self._secret_objects_listeners: list[Callable[[str, str], None]] = []
        self._change_listeners: list[ChangeListener] = []
        self.informer: Informer[CacheEntry] = Informer(
            "secretproviderclasses", api, resource, decode_class, settings=settings, handler=self
        )
        self.background = BackgroundClasses(self)

    def on_secret_objects_changed(self, listener: Callable[[str, str], None]) -> None:
        """Call ``listener(namespace, name)`` when a cached class's ``secretObjects`` change
        or the class is deleted (secret sync re-syncs its volumes at once)."""
        self._secret_objects_listeners.append(listener)

    def listen(self, listener: ChangeListener) -> None:
        """Tell ``listener`` of every class created or edited (annotations included)."""
        self._change_listeners.append(listener)

    # ---- informer events ----

    def on_upsert(self, key: Key, old: CacheEntry | None, new: CacheEntry) -> None:
        before = getattr(old, "secret_objects", None)
        if old is not None and before != getattr(new, "secret_objects", None):
            self._secret_objects_changed(key)
        if isinstance(new, SecretProviderClass):
            previous = old if isinstance(old, SecretProviderClass) else None
            for listener in self._change_listeners:
                listener.class_changed(previous, new)

    def on_delete(self, key: Key, old: CacheEntry) -> None:
        self._secret_objects_changed(key)

    def on_synced(self) -> None:
        return

    def _secret_objects_changed(self, key: Key) -> None:
        for listener in self._secret_objects_listeners:
            listener(*key)

    def use(self, resource: Resource) -> None:
        """Serve from ``resource`` (v1 or v1alpha1); before the informer runs."""
        self.resource = self.informer.resource = resource

    async def get(
        self, namespace: str, name: str, lane: Lane = Lane.PUBLISH
    ) -> SecretProviderClass:
        """The class from the cache, else read on ``lane``. Raises InvalidRequest (a name no
        object can have), SecretProviderClassNotFound, InvalidSecretProviderClass, or the
        API's failure reworded with upstream's reason."""
        problem = subdomain_problem(name)  # no object has such a name: the API is not asked
        if problem:
            raise InvalidRequest(f"secretProviderClass {problem}")
        ref = f"{namespace}/{shown_name(name)}"
        entry = self.informer.get(namespace, name)
        if entry is None:
            entry = await self._read(namespace, name, lane)
        if isinstance(entry, UnusableClass):
            raise InvalidSecretProviderClass(f"secretproviderclass {ref}: {entry.reason}")
        return entry

    def cached(self, namespace: str, name: str) -> SecretProviderClass | None:
        """The informer's copy (``ports.CachedClassSource``); None when it has none, or holds
        the class as unusable (``get`` reports why)."""
        entry = self.informer.get(namespace, name) if is_subdomain(name) else None
        return entry if isinstance(entry, SecretProviderClass) else None

    async def _read(self, namespace: str, name: str, lane: Lane) -> CacheEntry:
        ref = f"{namespace}/{shown_name(name)}"
        try:
            document = await self._api.get(self.resource, namespace, name, lane)
        except ApiNotFound:
            raise SecretProviderClassNotFound(
                f"failed to get secretproviderclass {ref}: not found in namespace {namespace}"
            ) from None
        except KubernetesApiError as err:
            # Kubelet retries (UNAVAILABLE for an outage); metrics keep upstream's reason.
            raise err.reworded(
                f"failed to get secretproviderclass {ref}: {err.message}",
                reason=SecretProviderClassNotFound.reason,
            ) from None
        try:
            return decode_class(document)
        except InvalidDocument as err:
            raise InvalidSecretProviderClass(f"secretproviderclass {ref}: {err.reason}") from None


class BackgroundClasses:
    """The same classes for work kubelet does not wait on: implements
    ``ports.SecretProviderClassSource`` and ``ports.CachedClassSource`` with a cache miss read
    on the background lane (``api.Lane``), so a re-sync pass or a rotation reading a deleted
    class never delays a publish."""

    def __init__(self, source: KubeSecretProviderClassSource) -> None:
        self._source = source

    async def get(self, namespace: str, name: str) -> SecretProviderClass:
        return await self._source.get(namespace, name, Lane.BACKGROUND)

    def cached(self, namespace: str, name: str) -> SecretProviderClass | None:
        return self._source.cached(namespace, name)
