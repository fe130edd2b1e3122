"""The steps both paths of a publish share: mount the target, ask the provider, store its
answer, undo what the call did. ``agent.core.publish`` runs them step by step;
``agent.core.first_publish`` runs a first publish with one worker-thread hop fewer."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from agent.core.mount_table import MountTable, pod_status_key
from agent.core.publish_attempt import Attempt
from agent.core.publish_request import context_of
from agent.core.secret_jobs import SecretSyncJobs
from agent.core.volume_content import VolumeContentStore, fetch_content
from agent.errors import AgentError
from agent.model import MountResult, ProviderRequest, VolumeRecord
from agent.ports import (
    PodEventSink,
    PodStatusStore,
    Provider,
    ProviderLookup,
    PublishObserver,
    SecretProviderClassSource,
)
from agent.ports_volumes import BlockingMounter, PayloadWriter, VolumeMetadataStore, VolumeMounter
from agent.targets import TargetRules

log = structlog.get_logger("agent.publish")


@dataclass(frozen=True, slots=True)
class PublishSettings:
    node_name: str
    rotation_enabled: bool = False
    provider_timeout: float = 90.0
    targets: TargetRules = field(default_factory=TargetRules)


@dataclass(slots=True)
class PublishPorts:
    spcs: SecretProviderClassSource
    providers: ProviderLookup
    mounter: VolumeMounter
    writer: PayloadWriter
    statuses: PodStatusStore
    metadata: VolumeMetadataStore
    observer: PublishObserver
    events: PodEventSink | None = None
    # Kubernetes mode: the volume's Secrets (spec.secretObjects) are synced after a write.
    secret_sync: SecretSyncJobs | None = None


class PublishSteps:
    """Mount, ask, store and undo for one publish's ``Attempt``; each records on the attempt
    what an undo needs (``mounted_here``, ``status_written``)."""

    def __init__(
        self,
        ports: PublishPorts,
        settings: PublishSettings,
        table: MountTable,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ports = ports
        self.settings = settings
        self.table = table
        self._clock = clock
        self.content = VolumeContentStore(
            ports.writer, ports.metadata, ports.statuses, table, settings.node_name
        )
        # The mounter's blocking form, when the store's hop can mount (``VolumeContentStore``).
        self.blocking_mounter: BlockingMounter | None = self.content.joins_mount(ports.mounter)

    async def mount(self, attempt: Attempt) -> None:
        if attempt.is_remount or attempt.mounted_here:
            return
        attempt.mounted_here = True
        await self.ports.mounter.mount(attempt.request.target_path)

    async def ask(self, provider: Provider, attempt: Attempt) -> MountResult:
        """``attempt``'s provider asked with its merged attributes, within
        ``--provider-timeout`` (``volume_content.fetch_content``)."""
        request = ProviderRequest(
            attributes=attempt.attributes,
            secrets=attempt.request.secrets,
            identity=attempt.identity,
            target_path=attempt.request.target_path,
        )
        return await fetch_content(
            provider, attempt.provider, request, self.settings.provider_timeout
        )

    async def store(
        self, attempt: Attempt, result: MountResult, still_first: Callable[[], bool] | None = None
    ) -> bool:
        """Mount if still needed, write the files, record them (one worker-thread hop when the
        volume stack allows); ``attempt.files_changed`` tells whether the visible content
        changed. True when stored.

        ``still_first`` (a first publish's check, ``first_publish``) runs first in that
        hop and mounts itself; when it returns False nothing is done and this returns False.
        """
        mount = None
        if still_first is not None:
            mount = self.blocking_mounter
        elif not (attempt.is_remount or attempt.mounted_here):
            mount = self.content.joins_mount(self.ports.mounter)
            if mount is None:
                await self.mount(attempt)
            attempt.mounted_here = True  # before the hop starts: from here an undo unmounts
        previous, now = self.table.get(attempt.request.target_path), self._clock()
        record = VolumeRecord(
            target_path=attempt.request.target_path,
            volume_id=attempt.request.volume_id,
            pod=attempt.identity,
            spc_name=attempt.spc_name,
            provider=attempt.provider,
            versions=result.versions,
            mounted_at=previous.mounted_at if previous else now,
            updated_at=now,
            context=context_of(attempt.request),
            mount_group=attempt.mount_group,
        )
        # Before the saves start: an undo may release the status only if this volume owns it.
        attempt.status_written = self.content.statuses.may_write(record)

        def written(changed: bool) -> None:
            attempt.files_changed = changed

        if not await self.content.store(record, result.files, written, mount, still_first):
            attempt.status_written = False
            return False
        # A first mount, an adoption (first recorded by this agent: its Secrets may never have
        # been synced) or changed content; in the background: kubelet never waits on Secrets.
        jobs, spc = self.ports.secret_sync, attempt.spc
        first = not attempt.is_remount or attempt.adopting
        if jobs is not None and spc is not None and (attempt.files_changed or first):
            jobs.written(record, spc)
        return True

    async def undo(self, attempt: Attempt) -> None:
        """Leave nothing of a failed first publish: no mount, no status, no table entry."""
        if not attempt.mounted_here:
            return
        target, pod = attempt.request.target_path, attempt.identity
        self.table.forget(target)
        key = pod_status_key(pod, attempt.spc_name)
        # Each step on its own: a failed unmount must not keep a "mounted: true" status around.
        steps: list[Callable[[], Awaitable[None]]] = [lambda: self.ports.mounter.unmount(target)]
        if attempt.status_written:  # never another volume's status
            steps.append(lambda: self.content.statuses.release(key))
        for step in steps:
            try:
                await step()
            except AgentError as err:
                log.error("node_publish.cleanup_failed", target_path=target, error=err.message)


def files_only(provider: Provider) -> bool:
    """The provider returns every file and never writes into the target (``ports.Provider``):
    it is asked before the mount, which then joins the hop that writes its files."""
    return getattr(provider, "files_only", False) is True
