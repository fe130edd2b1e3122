"""One pass over the mount table: which groups to fetch now, and when to look again.

Due volumes are collected per SecretProviderClass; each such class is read once (from the
cache in Kubernetes mode), then every volume of that class, due or not, is keyed, and each key
with at least one due member becomes a group: the whole group is served by the one fetch, so
its members stay in step and the next pass finds them due together. A volume with a fetch
running, or without a fetch context (after a restart, until kubelet republishes it), is left
out.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from agent.core.publish_request import check_class
from agent.errors import AgentError
from agent.model import SecretProviderClass, VolumeRecord
from agent.ports import SecretProviderClassSource
from agent.rotation.keys import FetchKey, fetch_key
from agent.rotation.notices import IntervalNotices
from agent.rotation.policy import fetches_per_pod
from agent.rotation.schedule import Schedule
from agent.rotation.throttle import ProviderThrottle

ClassRef = tuple[str, str]  # (namespace, name)


@dataclass(slots=True)
class Group:
    """Volumes one fetch serves. ``members`` are all eligible volumes with ``key``."""

    key: FetchKey
    spc: SecretProviderClass
    members: list[VolumeRecord]
    due: int  # how many members were due (the others are refreshed early, in step)


@dataclass(slots=True)
class ClassFailure:
    """The class of due volumes could not be read (deleted, invalid, API down) or is one
    publish would refuse (no provider or parameters)."""

    ref: ClassRef
    error: AgentError
    due: list[VolumeRecord]


@dataclass(slots=True)
class Plan:
    groups: list[Group] = field(default_factory=list)
    failures: list[ClassFailure] = field(default_factory=list)
    due: int = 0  # volumes due now (dispatched or waiting on a throttled provider)
    next_at: float | None = None  # when a volume not handled now becomes due

    def wake_at(self, moment: float) -> None:
        self.next_at = moment if self.next_at is None else min(self.next_at, moment)


@dataclass(slots=True)
class Planner:
    schedule: Schedule
    throttle: ProviderThrottle
    spcs: SecretProviderClassSource
    notices: IntervalNotices
    per_pod_providers: set[str] = field(default_factory=set)

    async def plan(
        self, volumes: Iterable[VolumeRecord], busy: Collection[str], now: float
    ) -> Plan:
        plan, by_class = Plan(), self._eligible_by_class(volumes, busy)
        for ref, records in by_class.items():
            due = []
            for record in records:
                at = self.schedule.due_at(record)
                if at <= now:
                    due.append(record)
                else:
                    plan.wake_at(at)
            if not due:
                continue
            try:
                spc = await self.spcs.get(*ref)
                check_class(spc)
            except AgentError as err:
                plan.due += len(due)
                plan.failures.append(ClassFailure(ref, err, due))
                continue
            self.schedule.learn_class(spc)
            self.notices.check(spc, [record.pod for record in records])
            self._group(spc, records, now, plan)
        return plan

    def _eligible_by_class(
        self, volumes: Iterable[VolumeRecord], busy: Collection[str]
    ) -> dict[ClassRef, list[VolumeRecord]]:
        by_class: dict[ClassRef, list[VolumeRecord]] = {}
        for record in volumes:
            if record.context is None or record.target_path in busy:
                continue
            by_class.setdefault((record.pod.namespace, record.spc_name), []).append(record)
        return by_class

    def _group(
        self, spc: SecretProviderClass, records: list[VolumeRecord], now: float, plan: Plan
    ) -> None:
        per_pod = fetches_per_pod(spc) or spc.provider in self.per_pod_providers
        keyed: dict[FetchKey, list[VolumeRecord]] = {}
        for record in records:
            keyed.setdefault(fetch_key(spc, record, per_pod=per_pod), []).append(record)
        for key, members in keyed.items():
            due = sum(1 for m in members if self.schedule.due_at(m) <= now)
            if not due:
                continue  # (the class's interval changed since the first look)
            plan.due += due
            wait = self.throttle.wait_until(spc.provider, now)
            if wait is None:
                plan.groups.append(Group(key, spc, members, due))
            elif wait > now:
                plan.wake_at(wait)
            # else a probe of this provider is running; its end wakes the scheduler
