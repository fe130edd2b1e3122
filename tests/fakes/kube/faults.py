"""Failures a test injects into the fake's request path.

Each :class:`Fault` matches requests by Kubernetes verb, resource (``pods``, ``pods/status``,
``serviceaccounts/token``), namespace, name, API group, or any predicate, and fires ``times``
times (``None``: until removed). What it does, in this order: wait ``delay`` seconds, wait
until released (``hold``), then either answer with an error ``Status`` (500, 429 with
``Retry-After``, 403, 503...), answer with a raw body of the test's choosing (``answer``: a
broken server or proxy), reset the connection without an answer, or let the request through
(for watches, optionally ending the stream after ``drop_after_events`` events).

    kube.faults.fail(500, verb="create", resource="secretproviderclasspodstatuses")
    kube.faults.throttle(retry_after=2, resource="secretproviderclasses", times=3)
    held = kube.faults.hold(verb="get", resource="secretproviderclasses")
    ...; await held.wait_held(); held.release()
    kube.faults.drop_watch(resource="pods", after_events=1)
    kube.faults.stall_watch(resource="pods")                # a hung server
    kube.faults.answer(b"{}", verb="list", resource="pods")   # 200 with no items

Every fault counts its ``hits``; :meth:`Faults.clear` removes them all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypedDict, Unpack

from tests.fakes.kube.paths import RequestInfo
from tests.fakes.kube.status import ApiError

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    410: "Expired",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class Match(TypedDict, total=False):
    """Which requests a :class:`Fault` applies to (its fields of the same names)."""

    verb: str
    resource: str
    namespace: str
    name: str
    group: str
    predicate: Callable[[RequestInfo], bool]


@dataclass(eq=False)
class Fault:
    verb: str | None = None
    resource: str | None = None  # "pods" matches pods and its subresources; "pods/status" only that
    namespace: str | None = None
    name: str | None = None
    group: str | None = None
    predicate: Callable[[RequestInfo], bool] | None = None
    times: int | None = 1
    status: int | None = None
    reason: str | None = None
    message: str | None = None
    retry_after: int | None = None
    delay: float = 0.0
    reset: bool = False  # close the connection instead of answering
    drop_after_events: int | None = None  # watches: end the stream after this many events
    stall: bool = False  # watches: the headers, then nothing (no event, no end, no FIN)
    body: bytes | None = None  # answer with exactly this (status ``status`` or 200)
    content_type: str = "application/json"
    held: bool = False
    hits: int = 0
    _gate: asyncio.Event | None = field(default=None, repr=False)
    _waiting: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def matches(self, info: RequestInfo) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.verb is not None and self.verb != info.verb:
            return False
        if self.resource is not None and self.resource not in (info.resource, info.resource_path):
            return False
        for wanted, actual in (
            (self.namespace, info.namespace),
            (self.name, info.name),
            (self.group, info.group),
        ):
            if wanted is not None and wanted != actual:
                return False
        return self.predicate is None or self.predicate(info)

    def error(self, info: RequestInfo) -> ApiError:
        code = self.status or 500
        reason = self.reason or _REASONS.get(code, "InternalError")
        message = self.message or _default_message(code, info)
        error = ApiError(code, reason, message)
        if self.retry_after is not None:
            error.headers["Retry-After"] = str(self.retry_after)
            error.details["retryAfterSeconds"] = self.retry_after
        return error

    async def pause(self) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self._gate is not None:
            self._waiting.set()
            await self._gate.wait()

    def release(self) -> None:
        """Let held requests (and later matching ones) continue."""
        if self._gate is not None:
            self._gate.set()

    async def wait_held(self) -> None:
        """Return once a request is waiting on this fault."""
        await self._waiting.wait()


CLUSTER_SCOPE = " at the cluster scope"  # how the authorizer ends a cluster-scoped denial


def _default_message(code: int, info: RequestInfo) -> str:
    if code == 429:
        return "Too many requests, please try again later."
    if code == 403:
        return (
            f'{info.resource_path} "{info.name}" is forbidden: User '
            f'"system:serviceaccount:kube-system:secrets-store-agent" cannot {info.verb} '
            f'resource "{info.resource_path}" in API group "{info.group}"'
            + (f' in the namespace "{info.namespace}"' if info.namespace else CLUSTER_SCOPE)
        )
    if code == 503:
        return "the server is currently unable to handle the request"
    return f"Internal error occurred: injected fault on {info.verb} {info.resource_path}"


class Faults:
    def __init__(self) -> None:
        self.active: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        self.active.append(fault)
        return fault

    def fail(self, status: int = 500, *, times: int | None = 1, **match: Unpack[Match]) -> Fault:
        """Answer matching requests with ``status`` and a ``Status`` body of its reason."""
        return self.add(Fault(status=status, times=times, **match))

    def throttle(
        self, retry_after: int = 1, *, times: int | None = 1, **match: Unpack[Match]
    ) -> Fault:
        """429 TooManyRequests with ``Retry-After`` (API priority and fairness rejecting)."""
        return self.add(Fault(status=429, retry_after=retry_after, times=times, **match))

    def delay(self, seconds: float, *, times: int | None = None, **match: Unpack[Match]) -> Fault:
        return self.add(Fault(delay=seconds, times=times, **match))

    def hold(
        self, *, status: int | None = None, times: int | None = None, **match: Unpack[Match]
    ) -> Fault:
        """Matching requests wait until :meth:`Fault.release` (no wall-clock sleeps), then go
        through, or get ``status`` when given."""
        fault = Fault(status=status, times=times, _gate=asyncio.Event(), **match)
        return self.add(fault)

    def answer(
        self,
        body: bytes,
        *,
        status: int = 200,
        content_type: str = "application/json",
        times: int | None = 1,
        **match: Unpack[Match],
    ) -> Fault:
        """Answer matching requests with ``body`` as is: garbage, a wrong kind, no items."""
        fault = Fault(body=body, status=status, content_type=content_type, times=times, **match)
        return self.add(fault)

    def reset_connection(self, *, times: int | None = 1, **match: Unpack[Match]) -> Fault:
        return self.add(Fault(reset=True, times=times, **match))

    def drop_watch(
        self,
        *,
        after_events: int = 0,
        reset: bool = False,
        times: int | None = 1,
        **match: Unpack[Match],
    ) -> Fault:
        """End matching watch streams after ``after_events`` events (``reset``: abruptly)."""
        match.setdefault("verb", "watch")
        fault = Fault(drop_after_events=after_events, reset=reset, times=times, **match)
        return self.add(fault)

    def stall_watch(self, *, times: int | None = 1, **match: Unpack[Match]) -> Fault:
        """Matching watches get their headers, then nothing, ever: a server that hangs (its
        kernel still answers, so TCP keepalive cannot tell)."""
        match.setdefault("verb", "watch")
        return self.add(Fault(stall=True, times=times, **match))

    def match(self, info: RequestInfo) -> Fault | None:
        for fault in self.active:
            if fault.matches(info):
                fault.hits += 1
                return fault
        return None

    def remove(self, fault: Fault) -> None:
        if fault in self.active:
            self.active.remove(fault)

    def clear(self) -> None:
        for fault in self.active:
            fault.release()
        self.active.clear()
