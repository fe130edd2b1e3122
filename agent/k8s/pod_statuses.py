"""SecretProviderClassPodStatus objects through the API, written behind the publish.

``upsert`` and ``delete`` record the wanted state of an object and return at once, so kubelet
never waits on the API and a publish keeps working through an outage. A few writers apply
wanted states: per object in order and coalesced (only the latest wanted state is sent),
retried with jittered backoff while the API is unavailable, so they arrive once it returns.

They use the API's background lane: kubelet does not wait for them, so they must not spend
the budget of what it does wait for.

Writes follow upstream §6: create; on AlreadyExists read the object and take it over (it may
carry another node's label, e.g. a StatefulSet pod rescheduled before garbage collection) by
overwriting the node label, the owner reference and the status. An object this store wrote
before is updated with one JSON merge patch, and deleted, on condition of the
``resourceVersion`` it last saw: one API write per change, none when nothing changed. A
condition that fails means someone else wrote the object: it is read again, and
``pod_status_claims`` decides whether it is still this node's to write or delete. An object
that changed under every one of a write's attempts (``pod_status_objects.ATTEMPTS``), or whose
write the API refuses (401/403: RBAC, or an admission policy of its namespace), is written
again after a backoff of its own (the agent's retry policy, growing per object), as often as it
takes: until the write lands, the object turns out to be someone else's, or a newer wish
replaces it (the volume's next status, or its delete once the volume is gone). The other
objects' writes go on meanwhile.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Awaitable, Callable
from typing import Final

import structlog

from agent import crashpoints
from agent.aio.backoff import Backoff, BackoffPolicy
from agent.documents.names import is_subdomain, shown_name
from agent.errors import (
    ApiConflict,
    ApiForbidden,
    ApiUnavailable,
    KubernetesApiError,
    StatusError,
)
from agent.k8s.api import KubeApi
from agent.k8s.pod_status_loading import load_node_statuses
from agent.k8s.pod_status_objects import ATTEMPTS, StatusObjects
from agent.model import PodStatus

log = structlog.get_logger(__name__)

Key = tuple[str, str]
_DELETE: Final = "delete"
CONTENDED_NOTE = f"changed by someone else under {ATTEMPTS} attempts in a row"
Wanted = PodStatus | str  # a status to write, or _DELETE


class _Outcome(enum.Enum):
    DONE = "done"  # written, nothing to write, or refused for good
    RETRY = "retry"  # the API is unavailable: again after the shared pause
    CONTENDED = "contended"  # changed under every attempt: again after this object's backoff
    REFUSED = "refused"  # 401/403 for this object: again after this object's backoff


class KubePodStatusStore:
    """Implements ``ports.PodStatusStore``; ``run`` (the writers) runs under the adapter."""

    def __init__(
        self,
        api: KubeApi,
        node_name: str,
        *,
        writers: int = 4,
        backoff: BackoffPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._api = api
        self._node = node_name
        self._writers = writers
        self._policy = backoff or BackoffPolicy()
        self._backoff = Backoff(self._policy)  # shared: an outage pauses every writer
        # Objects retried after a backoff of their own: their last write met others' writes,
        # or was refused (``_refused``: the API's message).
        self._contended: dict[Key, Backoff] = {}
        self._refused: dict[Key, str] = {}
        self._accepted = False  # a write has landed: refusals are the objects', not RBAC's
        self._clock = clock
        self._sleep = sleep
        self._group: asyncio.TaskGroup | None = None
        self._wanted: dict[Key, Wanted] = {}
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._in_flight: set[Key] = set()
        self._objects = StatusObjects(api, node_name)
        self._settled: dict[Key, asyncio.Event] = {}  # set when a key's writes are done
        self._settle_listeners: list[Callable[[str, str], None]] = []
        self._idle = asyncio.Event()
        self._idle.set()
        self._paused_until = 0.0
        self._error = ""

    # ---- the port ----

    async def upsert(self, status: PodStatus) -> None:
        self.want(status)
        crashpoints.reached("record.status_saved")  # handed to the writers: this mode's save

    async def delete(self, namespace: str, name: str) -> None:
        self._want((namespace, name), _DELETE)

    def want(self, status: PodStatus) -> None:
        """``upsert`` without awaiting (for mount-table listeners): queue the status; nothing
        is sent when the server already holds exactly this. StatusError for a name the API
        would refuse."""
        if not is_subdomain(status.name):
            raise StatusError(
                f"cannot record pod status {status.namespace}/{shown_name(status.name)}: not a "
                "valid object name (a lowercase RFC 1123 subdomain of at most 253 characters)"
            )
        key = (status.namespace, status.name)
        if (
            key not in self._wanted
            and key not in self._in_flight
            and self._objects.holds(key, status)
        ):
            return
        self._want(key, status)

    async def load_all(self) -> list[PodStatus]:
        """This node's statuses whose target path matches their pod (``load_node_statuses``)."""
        return await load_node_statuses(self._api, self._node, self._objects)

    async def written_uid(self, namespace: str, name: str) -> str:
        """The ``metadata.uid`` of the status once every write wanted for it has been applied
        (waits for them, unbounded: callers bound it); ``""`` when the object does not exist
        as far as this store knows (never written, its write failed, or deleted). Secret sync
        references a bare pod's status as the Secret's owner, as upstream does."""
        key = (namespace, name)
        while key in self._wanted or key in self._in_flight:
            await self._settled.setdefault(key, asyncio.Event()).wait()
        return self._objects.uid(key)

    def is_pending(self, namespace: str, name: str) -> bool:
        """A write of the status is queued or in flight (``written_uid`` would wait)."""
        key = (namespace, name)
        return key in self._wanted or key in self._in_flight

    def on_settled(self, listener: Callable[[str, str], None]) -> None:
        """Call ``listener(namespace, name)`` each time every write wanted for a status has
        been applied (it landed, or was given up): what ``written_uid`` waits for, told to
        whoever gave up waiting. Called on the writer's task; it must not block."""
        self._settle_listeners.append(listener)

    # ---- state for readiness and tests ----

    @property
    def pending(self) -> int:
        """Objects with a write still to make (one being retried may also have a newer wish;
        one waiting out its backoff after conflicts counts too)."""
        return len(self._wanted.keys() | self._in_flight)

    async def wait_idle(self) -> None:
        """Until every wanted state has been written (or refused for good)."""
        await self._idle.wait()

    def problem(self) -> str:
        """An outage, or refusals while no write has ever landed (the agent's RBAC); refusals
        of some objects only (an admission policy of their namespace) are logged per object,
        and do not take the node's agent out of readiness."""
        if self._error and self.pending:
            return f"{self.pending} pod status writes waiting: {self._error}"
        if self._refused and not self._accepted:
            first = next(iter(self._refused.values()))
            return f"{len(self._refused)} pod status writes refused: {first}"
        return ""

    def unwritten_reason(self) -> str:
        """Why writes are still waiting (for the log at stop): :meth:`problem`, else an object
        the API refuses or that someone else keeps changing (readiness counts neither); ""
        when none."""
        waiting = [key for key in self._contended if key in self._wanted or key in self._in_flight]
        if self.problem() or not waiting:
            return self.problem()
        if waiting[0] in self._refused:
            return self._refused[waiting[0]]
        changes = self._contended[waiting[0]].attempts * ATTEMPTS
        return (
            f"conflict: pod status {waiting[0][0]}/{waiting[0][1]} changed under each of its "
            f"last {changes} writes"
        )

    # ---- the writers ----

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            self._group = group  # the writers' and the contended objects' waits end with it
            for index in range(self._writers):
                group.create_task(self._write_forever(), name=f"pod-status-writer-{index}")

    def _want(self, key: Key, wanted: Wanted) -> None:
        queued = key in self._wanted or key in self._in_flight
        self._wanted[key] = wanted
        self._idle.clear()
        if not queued:
            self._queue.put_nowait(key)

    async def _next(self) -> tuple[Key, Wanted]:
        key = await self._queue.get()
        self._in_flight.add(key)
        return key, self._wanted.pop(key)

    async def _write_forever(self) -> None:
        while True:
            key, wanted = await self._next()
            delay = self._paused_until - self._clock()
            if delay > 0:
                await self._sleep(delay)
            outcome = await self._write_once(key, wanted)
            self._in_flight.discard(key)
            if outcome is _Outcome.DONE:
                self._contended.pop(key, None)
                self._refused.pop(key, None)
            else:
                self._wanted.setdefault(key, wanted)  # a newer wish wins
            if outcome in (_Outcome.CONTENDED, _Outcome.REFUSED):
                self._park(key)
            elif key in self._wanted:
                self._queue.put_nowait(key)
            else:
                self._settle(key)

    def _settle(self, key: Key) -> None:
        settled = self._settled.pop(key, None)
        if settled is not None:
            settled.set()
        for listener in self._settle_listeners:
            try:
                listener(*key)
            except Exception as err:  # a listener's bug must not stop the writer
                log.error("pod_status.listener_bug", name=key[1], error_type=type(err).__name__)
        if not self._wanted and not self._in_flight:
            self._idle.set()

    def _park(self, key: Key) -> None:
        """Write ``key`` again after its own backoff; it stays wanted (not queued) meanwhile,
        so a newer wish replaces the waiting one instead of queueing behind it."""
        delay = self._contended.setdefault(key, Backoff(self._policy)).next_delay()
        refused = self._refused.get(key)
        event, detail = (
            ("pod_status.write_refused", {"error": refused})
            if refused is not None
            else ("pod_status.write_contended", {"note": CONTENDED_NOTE})
        )
        log.warning(event, namespace=key[0], name=key[1], delay_s=round(delay, 2), **detail)
        assert self._group is not None  # parked only by a writer, inside run()
        self._group.create_task(self._unpark(key, delay), name=f"pod-status-backoff-{key[1]}")

    async def _unpark(self, key: Key, delay: float) -> None:
        await self._sleep(delay)
        self._queue.put_nowait(key)  # its newest wish, whatever came during the wait

    async def _write_once(self, key: Key, wanted: Wanted) -> _Outcome:
        """Apply one wanted state; what to do next."""
        try:
            if isinstance(wanted, PodStatus):
                sent = await self._objects.apply(key, wanted)
            else:
                sent = await self._objects.remove(key)
        except ApiForbidden as err:
            # RBAC or an admission policy (a webhook's denial is 403 too), which an operator may
            # still fix: this object is tried again later, the others' writes go on.
            self._refused[key] = err.message
            return _Outcome.REFUSED
        except ApiUnavailable as err:
            # An outage or throttling: every writer pauses, and keeps trying.
            self._error = err.message
            pause = self._backoff.next_delay(err.retry_after or 0.0)
            self._paused_until = max(self._paused_until, self._clock() + pause)
            log.warning("pod_status.write_retrying", error=err.message, delay_s=round(pause, 2))
            return _Outcome.RETRY
        except ApiConflict:  # only what outlasted every attempt comes this far
            return _Outcome.CONTENDED
        except KubernetesApiError as err:
            log.error("pod_status.write_failed", namespace=key[0], name=key[1], error=err.message)
            return _Outcome.DONE
        except Exception as err:  # a bug must not stop the other writes
            log.error("pod_status.write_bug", name=key[1], error_type=type(err).__name__)
            return _Outcome.DONE
        if sent:  # only an answer from the API says it is reachable again
            self._error = ""
            self._accepted = True
            self._backoff.reset()
        return _Outcome.DONE
