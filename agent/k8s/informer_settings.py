"""An informer's (``agent.k8s.informer``) settings: backoff, watch timeouts, page size and the
liveness check."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.aio.backoff import BackoffPolicy
from agent.k8s.watch_liveness import QuietLimit


@dataclass(frozen=True, slots=True)
class InformerSettings:
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    # The server ends each watch after a random 5 to 10 minutes (client-go's spread), so
    # reconnects of many nodes do not line up.
    watch_timeout: tuple[int, int] = (300, 600)
    # Silence is no sign of a dead connection: a healthy watch of a quiet resource may hear
    # nothing until the server ends it. kube-apiserver (1.27 to 1.34, storage/cacher: cacher.go
    # dispatchEvents, cache_watcher.go nextBookmarkTime and process) offers each watch a
    # bookmark about every minute and 2 s before its timeout, at the version its watch cache
    # has reached, and sends it only when that is newer than the version the watch started
    # from. A cache's version moves with an event of its resource (any object, whatever the
    # watch's selectors) or with etcd's progress notifications (every 10 minutes by default),
    # and the watch starts from a list's version, etcd's newest: so a quiet resource's watch
    # may get no bookmark before its 5 to 10 minutes are up. A watch served without the cache
    # (--watch-cache=false, or a size of 0 for the resource) gets no bookmark at all.
    # So the client waits for the server's end plus this margin; ``quiet`` finds a server
    # that hangs sooner, TCP keepalive (ApiSettings.keepalive) a peer that is gone.
    read_margin: float = 30.0
    page_size: int = 500
    # A watch silent this long is ended and opened again (agent.k8s.watch_liveness; None: off).
    quiet: QuietLimit | None = field(default_factory=QuietLimit)
