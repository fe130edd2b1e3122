"""What a watch's silence means, and what it calls for: the liveness check of a watch over
HTTP/1.1, the version check after a long silence, and the names of watch failures in logs.

A healthy watch of a quiet resource may hear nothing for its whole ``timeoutSeconds`` (see
``InformerSettings.read_margin``). TCP keepalive (``agent.k8s.keepalive``) finds a peer whose
kernel is gone; it cannot find a server process that hangs while its kernel answers (stopped,
deadlocked) or a proxy or load balancer that keeps the client's connection but no longer
forwards the stream. client-go finds those over HTTP/2 with a ping after 30 s without a frame;
nothing can be sent on an HTTP/1.1 watch. Left alone, such a watch stays silent until its read
timeout (up to 10.5 minutes), while pods are deleted and classes change unseen.

So a watch that hears nothing (no event, no bookmark) for ``QuietLimit.seconds`` is ended by
the client and opened again, on another connection, from the version it has reached. That
request is the check:

- a server (or a path to it) that hangs does not answer it within the request timeout: the
  informer reports the watch failing (``reason=liveness``, /readyz) and retries with its backoff;
- a stream that died behind a proxy is replaced, and the new watch replays at once every
  change the old one missed (the watch cache keeps them; 410 Gone if too old: a relist);
- a watch that was only quiet is replaced by an equal one: nothing is lost, nothing listed.

Not a list compared by resourceVersion: a list's version is etcd's revision, which every write
in the cluster moves, while a healthy quiet watch stays at its last event or bookmark (sent only
when the resource's watch cache moves), so "the list is newer" says nothing about the watch;
and many servers still in use read a list with a ``limit`` and a version from etcd, not from
the watch cache (for the pods of one node, a field etcd cannot filter on, a scan), where a watch
from a version is served from the cache. A fresh answer on a new connection cannot prove an old
stream alive either; replacing the stream makes that question moot.

Cost: nothing while events or bookmarks flow (each restarts the count); for a resource nobody
writes, one watch request every ``seconds`` to ``seconds * (1 + jitter)`` instead of one per
5 to 10 minutes. The version check after a silent watch (see ``agent.k8s.informer``) keeps its
old pace: once per shortest server timeout of silence, not once per replaced watch.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from agent.errors import (
    ApiConnectionLost,
    ApiGone,
    ApiTooLargeResourceVersion,
    KubernetesApiError,
)


@dataclass(frozen=True, slots=True)
class QuietLimit:
    """A watch silent for ``seconds``, stretched by a random fraction up to ``jitter`` per
    watch (so the informers of one node, and the nodes of a cluster, do not check together),
    is ended and opened again. 180 s: well past the watch cache's bookmark cadence (about
    one a minute once the resource's cache has moved), so a watch of a resource written
    anywhere in the cluster is practically never replaced; a resource nobody writes costs
    about 18 watch requests an hour instead of the 6 to 12 of the server's own 5 to 10
    minute timeouts (60 s would cost 50: every node's quiet caches, cluster-wide, for a gain
    of two minutes); with the request timeout (10 s) a hung server is found within about
    4 minutes instead of 10.5."""

    seconds: float = 180.0
    jitter: float = 0.25

    def draw(self, rng: random.Random) -> float:
        return self.seconds * (1.0 + rng.uniform(0.0, self.jitter))


class Silence:
    """One informer's record of what its watches heard.

    ``quiet``: the liveness check (None: off). ``check_after``: seconds of silence after which
    a watch that heard nothing calls for the version check (``needs_check``).
    """

    def __init__(
        self,
        quiet: QuietLimit | None,
        check_after: float,
        rng: random.Random,
        clock: Callable[[], float],
    ) -> None:
        self._quiet = quiet
        self._check_after = check_after
        self._rng = rng
        self._clock = clock
        self._vouched_at = clock()
        self._after_quiet: float | None = None  # the last watch ended after this much silence
        self.needs_check = False

    def limit(self) -> float | None:
        """Seconds the next watch may stay silent (None: until its read timeout)."""
        return self._quiet.draw(self._rng) if self._quiet is not None else None

    def vouched(self) -> None:
        """A list, a version check or a heard event: the version is one the server has."""
        self._vouched_at = self._clock()
        self._after_quiet = None
        self.needs_check = False

    def opened(self) -> None:
        """The server answered a new watch: the check (if one) passed."""
        self._after_quiet = None

    def ended(self, *, heard: bool, lasted: bool, quiet_for: float | None) -> None:
        """A watch ended: ``heard`` an event, ``lasted`` long enough to count, or was ended by
        the client after ``quiet_for`` seconds of silence (None: the server or a failure)."""
        self._after_quiet = quiet_for
        if heard:
            self._vouched_at = self._clock()
            self.needs_check = False
        elif lasted:
            self.needs_check = self._clock() - self._vouched_at >= self._check_after

    def describe(self, error: Exception) -> tuple[str, float, str]:
        """(what /readyz and the log say, the server's Retry-After, the log's ``reason``) for
        a failed list or watch; a bug shows its type only (its text may quote API data)."""
        after, self._after_quiet = self._after_quiet, None
        if not isinstance(error, KubernetesApiError):
            return f"unexpected {type(error).__name__}", 0.0, "unexpected"
        hint = error.retry_after or 0.0
        if after is not None and error.status == 0:  # no answer at all, not an HTTP status
            message = f"heard nothing for {after:.0f} s, then no answer: {error.message}"
            return message, hint, "liveness"
        return error.message, hint, failure_reason(error)


def failure_reason(error: KubernetesApiError) -> str:
    """The log's ``reason`` for a failed list or watch (see docs/operations.md)."""
    if isinstance(error, ApiConnectionLost):
        return error.how
    if isinstance(error, ApiGone):
        return "gone"
    if isinstance(error, ApiTooLargeResourceVersion):
        return "too_large_resource_version"
    return "api_error"
