"""One group's rotation: a single fetch, then each member's files, record and Secrets.

The fetch uses the freshest valid token of the group (refreshed through TokenRequest when it
is about to expire and the fallback is on). Each member is then handled under its target's
lock, after checking it is still the volume the table holds: a volume unpublished (or
released) while the fetch ran is never written to, so it cannot come back. Files are swapped
in only when their content changed; the record (metadata, pod status with the new versions)
only when files or versions changed; Secrets are re-synced only after a change. A failure
keeps the old content and versions.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import structlog

from agent.aio.clock import Clock
from agent.aio.locks import KeyedLock
from agent.core.identity import refreshed_identity
from agent.core.mount_table import MountTable
from agent.core.pod_info import format_tokens
from agent.core.publish_request import merged_attributes
from agent.core.volume_content import VolumeContentStore, fetch_content
from agent.errors import ProviderThrottled, ProviderUnavailable
from agent.log_redaction import scrubbing, token_parts
from agent.model import (
    MountResult,
    ObjectVersion,
    PodIdentity,
    ProviderRequest,
    SecretProviderClass,
    VolumeRecord,
)
from agent.ports import ProviderLookup, ServiceAccountTokenMinter
from agent.ports_sync import SecretSync
from agent.rotation.keys import freshest
from agent.rotation.plan import Group
from agent.rotation.report import RotationReport
from agent.rotation.schedule import Schedule
from agent.rotation.throttle import Claim, ProviderThrottle

log = structlog.get_logger("agent.rotation")


@dataclass(frozen=True, slots=True)
class Fetched:
    result: MountResult
    representative: VolumeRecord
    asked_as: PodIdentity  # the representative's identity when the fetch started
    minted: PodIdentity | None  # the same with a token minted for this fetch, if any
    started: float  # perf_counter when the group started, for durations


@dataclass(slots=True)
class GroupRotator:
    providers: ProviderLookup
    content: VolumeContentStore
    sync: SecretSync | None
    minter: ServiceAccountTokenMinter | None
    table: MountTable
    locks: KeyedLock
    schedule: Schedule
    throttle: ProviderThrottle
    report: RotationReport
    clock: Clock
    provider_timeout: float
    per_pod_providers: set[str]

    async def fetch(self, group: Group) -> Fetched | None:
        """The group's one provider call; None when it failed (reported) or the provider
        became throttled meanwhile (the group stays due)."""
        started, provider = time.perf_counter(), group.spc.provider
        claim = self.throttle.claim(provider, self.clock.now())
        if claim is None:
            return None
        representative = freshest(group.members)
        asked_as = representative.pod
        # As kubelet's call (agent.csi.guard): what the provider is given is scrubbed from
        # the log lines and events that may quote its error. Members share the secrets.
        with scrubbing(_sensitive_values(representative)):
            try:
                identity = await self._identity(asked_as)
                result = await self._call(group.spc, representative, identity)
            except Exception as err:
                self._fetch_failed(group, claim, err)
                return None
        self.throttle.answered(claim)
        seconds = time.perf_counter() - started
        self.report.fetched(provider, group.spc.name, len(group.members), group.due, seconds)
        minted = identity if identity is not asked_as else None
        return Fetched(result, representative, asked_as, minted, started)

    async def _identity(self, pod: PodIdentity) -> PodIdentity:
        now = datetime.fromtimestamp(self.clock.now(), UTC)
        return await refreshed_identity(pod, self.minter, now)

    async def _call(
        self, spc: SecretProviderClass, record: VolumeRecord, identity: PodIdentity
    ) -> MountResult:
        assert record.context is not None  # the planner keys only volumes with a context
        attributes = merged_attributes(
            spc.parameters, record.context.volume_context, format_tokens(identity.tokens)
        )
        request = ProviderRequest(
            attributes=attributes,
            secrets=record.context.secrets,
            identity=identity,
            target_path=record.target_path,
            current_versions=record.versions,
        )
        provider = await self.providers.load(spc.provider)
        return await fetch_content(provider, spc.provider, request, self.provider_timeout)

    def _fetch_failed(self, group: Group, claim: Claim, error: Exception) -> None:
        now = self.clock.now()
        if isinstance(error, ProviderThrottled):
            # The whole provider waits; the group stays due and goes when it reopens.
            delay = self.throttle.throttled(claim, now, error.retry_after)
            for member in group.members:
                self.report.failed(member, error, now + delay, now)
            return
        if isinstance(error, ProviderUnavailable):
            self.throttle.released(claim)
        else:
            self.throttle.answered(claim)  # a refusal is an answer: not throttling
        for member in group.members:
            self.report.failed(member, error, self.schedule.failed(member, now), now)

    async def apply(self, group: Group, fetched: Fetched) -> None:
        """Write the result to every member (concurrently; each under its own lock)."""
        members = group.members
        if not fetched.result.files and len(members) > 1:
            # A plugin that wrote into the representative's target itself: the others need
            # fetches of their own (they stay due), and this provider is never shared again.
            self.per_pod_providers.add(group.spc.provider)
            log.warning("rotation.provider_not_shareable", provider=group.spc.provider)
            members = [fetched.representative]
        await asyncio.gather(*(self._apply_one(m, group.spc, fetched) for m in members))

    async def _apply_one(
        self, member: VolumeRecord, spc: SecretProviderClass, fetched: Fetched
    ) -> None:
        target = member.target_path
        try:
            async with self.locks.hold(target):
                if self.table.get(target) is not member:
                    log.debug("rotation.volume_gone", target_path=target)
                    return  # unpublished, released or republished afresh meanwhile
                if fetched.minted is not None and member.pod is fetched.asked_as:
                    member.pod = fetched.minted  # keep the minted token (unless kubelet's
                    # republish brought a fresher one meanwhile)
                record, changed = await self._store(member, spc.provider, fetched.result)
        except Exception as err:
            now = self.clock.now()
            self.report.failed(member, err, self.schedule.failed(member, now), now)
            return
        self.schedule.succeeded(target)
        self.report.rotated(record, changed, time.perf_counter() - fetched.started)
        if changed and self.sync is not None:
            await self.sync.volume_written(record, spc)

    async def _store(
        self, member: VolumeRecord, provider: str, result: MountResult
    ) -> tuple[VolumeRecord, bool]:
        """Write and record ``result`` of ``provider`` (the class's now: it may have changed
        since the volume was mounted, and the record names who serves it)."""
        changed = await self.content.write_files(member, result)
        now = self.clock.now()
        same = member.provider == provider and _same_versions(member.versions, result.versions)
        if not changed and same:
            member.updated_at = now  # nothing to write anywhere
            return member, False
        record = replace(member, provider=provider, versions=result.versions, updated_at=now)
        await self.content.record(record)
        return record, changed


def _sensitive_values(record: VolumeRecord) -> list[str]:
    """The node-publish secret values and the pod's tokens (whole and in parts) a fetch for
    ``record`` hands the provider; a token minted for the fetch is JWT-shaped, caught anyway."""
    values = list(record.context.secrets.values()) if record.context is not None else []
    for token in record.pod.tokens.values():
        values.extend(token_parts(token.token))
    return values


def _same_versions(a: tuple[ObjectVersion, ...], b: tuple[ObjectVersion, ...]) -> bool:
    return sorted(a, key=lambda v: v.id) == sorted(b, key=lambda v: v.id)
