"""Warning and Normal events on pods, aggregated so a crash-looping pod cannot flood the API.

As client-go's event correlator: the same (pod, reason, message) within ten minutes updates
one Event's ``count`` and ``lastTimestamp`` instead of creating another, and those updates
are sent at most once per ``min_interval``; each pod may start at most ``burst`` distinct
events, refilled one per five minutes (client-go's spam filter). Messages are the vetted
error messages the agent already shows kubelet, scrubbed again and truncated. Sending runs
in the background and retries with backoff while the API is unavailable.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog

from agent.aio.backoff import Backoff, BackoffPolicy
from agent.aio.ratelimit import TokenBucket
from agent.documents.names import is_subdomain
from agent.errors import ApiNotFound, ApiUnavailable, KubernetesApiError
from agent.k8s.api import KubeApi, Lane, Object
from agent.k8s.resources import EVENTS
from agent.log_redaction import scrub_text
from agent.model import PodIdentity

log = structlog.get_logger(__name__)

COMPONENT = "secrets-store-agent"
# The reasons upstream records, under the component that records them there, so event routing
# and ``--field-selector source=...`` written for upstream keep matching: its sync controller
# (§12.2) and its ≤v1.5 rotation reconciler (§8.2). The agent's own reasons carry COMPONENT.
UPSTREAM_COMPONENTS = {
    "FailedToCreateSecret": "csi-secrets-store-controller",
    "MountRotationComplete": "csi-secrets-store-rotation",
    "MountRotationFailed": "csi-secrets-store-rotation",
    "SecretRotationComplete": "csi-secrets-store-rotation",
    "SecretRotationFailed": "csi-secrets-store-rotation",
}
MAX_MESSAGE = 1024
MAX_ENTRIES = 4096


@dataclass(slots=True)
class _Entry:
    pod: PodIdentity
    type: str  # "Warning" or "Normal"
    reason: str
    message: str
    first: float
    last: float
    count: int = 1
    sent_count: int = 0
    sent_at: float = float("-inf")
    name: str = ""  # the Event object, once created


@dataclass(frozen=True, slots=True)
class EventSettings:
    window: float = 600.0
    min_interval: float = 30.0
    burst: int = 25
    refill_per_second: float = 1 / 300
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)


class KubeEventRecorder:
    """Implements ``ports.PodEventSink``; ``run`` sends, under the adapter."""

    def __init__(
        self,
        api: KubeApi,
        node_name: str,
        settings: EventSettings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._api = api
        self._node = node_name
        self._settings = settings or EventSettings()
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str, str], _Entry] = OrderedDict()
        self._budgets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._backoff = Backoff(self._settings.backoff)
        self._wake = asyncio.Event()
        self.dropped = 0

    def warning(self, pod: PodIdentity, reason: str, message: str) -> None:
        self._record(pod, "Warning", reason, message)

    def normal(self, pod: PodIdentity, reason: str, message: str) -> None:
        self._record(pod, "Normal", reason, message)

    def _record(self, pod: PodIdentity, kind: str, reason: str, message: str) -> None:
        text = scrub_text(" ".join(message.split()))[:MAX_MESSAGE]
        key, now = (pod.uid, reason, text), self._clock()
        entry = self._entries.get(key)
        if entry is not None and now - entry.last < self._settings.window:
            entry.count += 1
            entry.last = now
            self._entries.move_to_end(key)
        elif self._budget(pod.uid).try_take():
            self._entries[key] = _Entry(pod, kind, reason, text, first=now, last=now)
            self._evict()
        else:
            self.dropped += 1
            return
        self._wake.set()

    def _budget(self, uid: str) -> TokenBucket:
        bucket = self._budgets.get(uid)
        if bucket is None:
            s = self._settings
            bucket = self._budgets[uid] = TokenBucket(s.refill_per_second, s.burst, self._clock)
            while len(self._budgets) > MAX_ENTRIES:
                self._budgets.popitem(last=False)
        self._budgets.move_to_end(uid)
        return bucket

    def _evict(self) -> None:
        while len(self._entries) > MAX_ENTRIES:
            self._entries.popitem(last=False)

    @property
    def pending(self) -> int:
        return sum(1 for entry in self._entries.values() if entry.count > entry.sent_count)

    async def run(self) -> None:
        while True:
            due_in = self._next_due()
            if due_in is None or due_in > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(due_in):
                        await self._wake.wait()
                self._wake.clear()
                continue
            await self._send_due()

    def _next_due(self) -> float | None:
        """Seconds until the next entry may be sent (<= 0: now), None when none waits."""
        now, due = self._clock(), None
        for entry in self._entries.values():
            if entry.count > entry.sent_count:
                at = entry.sent_at + self._settings.min_interval if entry.name else now
                due = at if due is None else min(due, at)
        return None if due is None else due - now

    async def _send_due(self) -> None:
        now = self._clock()
        for entry in list(self._entries.values()):
            waiting = entry.count > entry.sent_count
            if not waiting or (entry.name and now < entry.sent_at + self._settings.min_interval):
                continue
            try:
                await self._send(entry)
            except ApiUnavailable as err:
                delay = self._backoff.next_delay(err.retry_after or 0.0)
                log.warning("event.retrying", error=err.message, delay_s=round(delay, 2))
                await asyncio.sleep(delay)
                return
            except KubernetesApiError as err:
                log.warning("event.dropped", reason=entry.reason, error=err.message)
                entry.sent_count = entry.count  # do not retry what the API refuses
            self._backoff.reset()

    async def _send(self, entry: _Entry) -> None:
        count, namespace = entry.count, entry.pod.namespace
        if entry.name:
            patch = {"count": count, "lastTimestamp": _timestamp(entry.last)}
            try:
                await self._api.merge_patch(EVENTS, namespace, entry.name, patch, Lane.BACKGROUND)
            except ApiNotFound:  # expired (the API keeps events about an hour): start anew
                entry.name = ""
        if not entry.name:
            body = self._event(entry, count)
            await self._api.create(EVENTS, namespace, body, Lane.BACKGROUND)
            entry.name = body["metadata"]["name"]
        entry.sent_count, entry.sent_at = count, self._clock()

    def _event(self, entry: _Entry, count: int) -> Object:
        pod = entry.pod
        component = UPSTREAM_COMPONENTS.get(entry.reason, COMPONENT)
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": event_name(pod.name, time.time_ns()),
                "namespace": pod.namespace,
            },
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": pod.name,
                "namespace": pod.namespace,
                "uid": pod.uid,
            },
            "reason": entry.reason,
            "message": entry.message,
            "type": entry.type,
            "count": count,
            "firstTimestamp": _timestamp(entry.first),
            "lastTimestamp": _timestamp(entry.last),
            "source": {"component": component, "host": self._node},
            "reportingComponent": component,
            "reportingInstance": self._node,
        }


def event_name(object_name: str, unix_nanos: int) -> str:
    """``<object>.<hex nanoseconds>``, or a random UUID when that is not a valid name (a pod
    name longer than 236 characters): client-go's ``GenerateEventName`` (kubernetes#127594),
    so the event is still recorded; ``involvedObject`` names the pod either way."""
    name = f"{object_name}.{unix_nanos:x}"
    if is_subdomain(name):  # an Event's name, as any object's
        return name
    return str(uuid.uuid4())


def _timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
