"""Kubernetes mode: every API-backed port, under one lifecycle (start, readiness, stop).

Start connects, starts the caches and the background writers, and waits (at most
``--cache-sync-timeout``) for the SecretProviderClass and pod caches and for the HMAC key,
so the first publish after a start reads nothing from the API. With the API down it serves
anyway: republishes and unpublishes need no API, SecretProviderClass reads fail with
UNAVAILABLE (kubelet retries), and /readyz names what is not synced.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog

from agent.aio.backoff import Backoff, BackoffPolicy
from agent.aio.tasks import TaskSet
from agent.config import Settings
from agent.core.mount_table import MountTable, status_key
from agent.core.records import status_of
from agent.errors import ConfigError, KubernetesApiError, StatusError
from agent.k8s.api import ApiSettings, KubeApi, Observer
from agent.k8s.connection import load_configuration, own_namespace
from agent.k8s.events import EventSettings, KubeEventRecorder
from agent.k8s.identity import KubeServiceAccounts, KubeTokenMinter
from agent.k8s.informer import Informer
from agent.k8s.informer_settings import InformerSettings
from agent.k8s.nodes import KubeNodeLabels
from agent.k8s.pod_statuses import KubePodStatusStore
from agent.k8s.pods import PodWatcher, Release
from agent.k8s.secret_consumers import KubeSecretConsumers
from agent.k8s.secrets import VersionKeySecret
from agent.k8s.spcs import KubeSecretProviderClassSource, served_resource
from agent.k8s.synced_secrets import KubeSecretStore
from agent.model import VolumeRecord
from agent.ports import ChangeListener

log = structlog.get_logger(__name__)

Check = Callable[[], Awaitable[bool | str]]
FLUSH_AT_STOP_S = 5.0


class KubernetesAdapter:
    def __init__(
        self,
        settings: Settings,
        observer: Observer | None = None,
        backoff: BackoffPolicy | None = None,
    ) -> None:
        """``backoff`` paces every retry loop (caches, status writes, events, HMAC key);
        tests and benchmarks shorten it."""
        if not settings.node_id:
            raise ConfigError(
                "--nodeid is required in Kubernetes mode (the chart passes spec.nodeName)"
            )
        self._settings = settings
        self._backoff = backoff or BackoffPolicy()
        self._informer_settings = InformerSettings(backoff=self._backoff)
        self.api = KubeApi(ApiSettings(settings.kube_api_qps, settings.kube_api_burst), observer)
        self.spcs = KubeSecretProviderClassSource(self.api, settings=self._informer_settings)
        self.statuses = KubePodStatusStore(self.api, settings.node_id, backoff=self._backoff)
        self.service_accounts = KubeServiceAccounts(self.api)
        self.events = KubeEventRecorder(
            self.api, settings.node_id, EventSettings(backoff=self._backoff)
        )
        self.tokens = KubeTokenMinter(self.api) if settings.token_request_fallback else None
        self.secret_store = KubeSecretStore(self.api)
        namespace = settings.agent_namespace or own_namespace()
        # No name: no Vault built in (the chart grants the Secret only then); the node-local key
        # from --state-dir stays.
        self.version_key = (
            VersionKeySecret(self.api, namespace, settings.hmac_secret_name)
            if settings.hmac_secret_name
            else None
        )
        self.pods: PodWatcher | None = None
        self.secret_consumers = KubeSecretConsumers(self.api, self.statuses, lambda: self.pods)
        self._listeners: list[ChangeListener] = []
        self.flush_at_stop = FLUSH_AT_STOP_S  # seconds stop waits for pending status writes
        self._tasks = TaskSet("kubernetes")
        self.node_labels = KubeNodeLabels(self.api, settings.node_id, self._tasks.spawn)

    def watch_pods(self, table: MountTable, release: Release) -> PodWatcher:
        """The pod informer (``release`` cleans up after a pod that is gone), and statuses
        that follow the mount table: a volume adopted from its metadata after a crash (whose
        status write never left the old process) gets its status like a fresh publish."""
        self.pods = PodWatcher(
            self.api, self._settings.node_id, table, release, self._informer_settings
        )
        for listener in self._listeners:
            self.pods.listen(listener)
        table.subscribe(lambda record: self._status_follows(table, record))
        return self.pods

    def listen(self, listener: ChangeListener) -> None:
        """Tell ``listener`` of created and edited classes and pods on this node."""
        self._listeners.append(listener)
        self.spcs.listen(listener)
        if self.pods is not None:
            self.pods.listen(listener)

    def _status_follows(self, table: MountTable, record: VolumeRecord) -> None:
        owner = table.status_owner(status_key(record))
        if owner is not None and owner.target_path != record.target_path:
            return  # a pod's second volume of one class never overwrites the first one's status
        try:
            self.statuses.want(status_of(record, self._settings.node_id))
        except StatusError as err:
            log.warning(
                "pod_status.unrecordable", target_path=record.target_path, error=err.message
            )

    @property
    def informers(self) -> list[Informer[Any]]:
        found: list[Informer[Any]] = [self.spcs.informer]
        if self.pods is not None:
            found.append(self.pods.informer)
        return found

    async def start(self, set_version_key: Callable[[bytes], None]) -> None:
        self.api.connect(await load_configuration(self._settings.kubeconfig))
        self.spcs.use(await served_resource(self.api))
        for informer in self.informers:
            self._tasks.spawn(informer.run(), informer.name)
        self._tasks.spawn(self.statuses.run(), "pod-status-writers")
        self._tasks.spawn(self.events.run(), "events")
        key_loaded = asyncio.Event()
        if self.version_key is None:
            key_loaded.set()
        else:
            # Keeps trying past the wait below; providers built after it arrives use it.
            self._tasks.spawn(
                self._load_version_key(self.version_key, set_version_key, key_loaded),
                "version-key",
            )
        waits = [informer.wait_synced() for informer in self.informers]
        try:
            async with asyncio.timeout(self._settings.cache_sync_timeout):
                await asyncio.gather(key_loaded.wait(), *waits)
        except TimeoutError:
            waiting = [informer.name for informer in self.informers if not informer.synced]
            log.warning(
                "k8s.start_not_synced",
                waiting=[*waiting, *([] if key_loaded.is_set() else ["hmac-key"])],
            )

    async def _load_version_key(
        self,
        version_key: VersionKeySecret,
        set_version_key: Callable[[bytes], None],
        loaded: asyncio.Event,
    ) -> None:
        backoff = Backoff(self._backoff)
        while True:
            try:
                set_version_key(await version_key.load())
                loaded.set()
                return
            except (KubernetesApiError, ValueError) as err:
                message = err.message if isinstance(err, KubernetesApiError) else str(err)
                delay = backoff.next_delay()
                # Not ``secret=``: the log redaction hides any value under such a key.
                ref = version_key.ref
                log.warning("version_key.unavailable", secret_name=ref, error=message)
                await asyncio.sleep(delay)

    def ready_checks(self) -> Mapping[str, Check]:
        checks: dict[str, Check] = {}
        for informer in self.informers:
            checks[f"kubernetes-{informer.name}"] = _problem_check(informer.problem)
        checks["kubernetes-pod-statuses"] = _problem_check(self.statuses.problem)
        return checks

    async def stop(self) -> None:
        """Give pending status writes a moment, then stop every task and close the session."""
        if self.statuses.pending:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.flush_at_stop):
                    await self.statuses.wait_idle()
        if self.statuses.pending:
            log.warning(
                "pod_status.unwritten_at_stop",
                pending=self.statuses.pending,
                error=self.statuses.unwritten_reason(),
                note="the next start writes or deletes them from the volumes on disk",
            )
        await self._tasks.close()
        if self.pods is not None:
            await self.pods.work.close()
        await self.api.close()


def _problem_check(problem: Callable[[], str]) -> Check:
    async def check() -> str:
        return problem()

    return check
