"""List, then watch: the one building block behind every cache of API objects.

The loop, as client-go's reflector and kopf's watcher: list (in pages) and replace the cache,
diffing against what it held so a deletion missed while the watch was down is still reported;
watch from the list's ``resourceVersion`` with bookmarks, following each event's version;
re-watch from the last version when the server ends the stream; relist when the server no
longer has that version (410 Gone) or has not reached it (504 "Too large resource version",
as client-go); after any other error wait a jittered, growing delay and try again. A watch
that ends at once, before any event (client-go's "very short watch"), is an error too: a
server that answers every watch that way gets a growing delay, not a relist storm.

A watch silent for about three minutes is ended and opened again from its version: the new
request checks that the server answers, and replaces a stream a stuck proxy no longer feeds
(``agent.k8s.watch_liveness``).

A version the server has not reached is what etcd restored from an older backup leaves, and a
plain watch never says so: the watch cache accepts a watch from a future version and sends
nothing (no event, no bookmark) until its store passes it. So once watches have heard nothing
for the server's shortest timeout (5 minutes), a one-item list "not older than" the version
comes before the next watch: 504 Too large (then a relist) or a page (the version is fine).
A quiet resource's watch may hear nothing for its whole timeout (see
``InformerSettings.read_margin``): that costs one small list per 5 to 6 minutes of silence.

``problem()`` says, for /readyz, whether the cache is usable and current. The loop never ends
by itself: its owner cancels the task, and the open response is closed on the way out. What
the cache keeps of each list and event, and the handler calls, are k8s/informer_cache.py's.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, TypeVar

import structlog

from agent.aio.backoff import Backoff
from agent.errors import ApiGone, ApiTooLargeResourceVersion
from agent.k8s.api import KubeApi, Lane, Object
from agent.k8s.informer_cache import InformerCache, InformerHandler, Key
from agent.k8s.informer_settings import InformerSettings
from agent.k8s.resources import Resource
from agent.k8s.watch_liveness import Silence
from agent.k8s.watch_stream import WatchStream

T = TypeVar("T")

log = structlog.get_logger(__name__)

# A watch shorter than this that delivered no event made no progress (client-go's rule).
MIN_WATCH_SECONDS = 1.0


def resource_version(document: Mapping[str, Any]) -> str:
    metadata = document.get("metadata")
    value = metadata.get("resourceVersion") if isinstance(metadata, Mapping) else None
    return value if isinstance(value, str) else ""


class Informer(Generic[T]):
    """A cache of one resource, filtered by selectors, holding ``decode``d values.

    ``decode`` turns an API object into what the cache keeps (smaller than the JSON), or None
    (or raises) when it cannot: that version of the object is then ignored, and the cache
    keeps the last one it could use. Only a DELETED event or a list without the object
    removes it (for pods that means releasing volumes: a decoder bug must not do that).
    """

    def __init__(
        self,
        name: str,
        api: KubeApi,
        resource: Resource,
        decode: Callable[[Object], T | None],
        *,
        selectors: Mapping[str, str] | None = None,
        handler: InformerHandler[T] | None = None,
        settings: InformerSettings | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.name = name
        self.resource = resource
        self._api = api
        self._selectors = dict(selectors or {})
        self._settings = settings or InformerSettings()
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not secrets)
        self._backoff = Backoff(self._settings.backoff, self._rng)
        self._cache = InformerCache(name, decode, handler)
        self._synced = asyncio.Event()
        self._version = ""
        self._error = ""
        self._clock = clock
        self._sleep = sleep
        self._progressed = False  # the current watch delivered an event, or lasted a while
        self._heard = False  # the current watch delivered an event (a bookmark counts)
        self._silence = Silence(
            self._settings.quiet, min(self._settings.watch_timeout), self._rng, clock
        )
        self.lists = 0  # complete lists so far (the first one plus relists)

    @property
    def items(self) -> Mapping[Key, T]:
        return self._cache.items

    def get(self, namespace: str, name: str) -> T | None:
        return self._cache.get(namespace, name)

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        await self._synced.wait()

    def problem(self) -> str:
        """Empty when the cache is filled and the watch is connected, else why not."""
        if not self.synced:
            return f"not synced yet{': ' + self._error if self._error else ''}"
        return f"watch failing, cache may be stale: {self._error}" if self._error else ""

    async def run(self) -> None:
        relist = True
        while True:
            self._progressed = False
            try:
                if relist:
                    await self._list()
                    relist = False
                elif self._silence.needs_check:
                    await self._confirm_version()
                await self._watch()
                if self._progressed:
                    continue  # the server's timeout, or quiet: watch on from the last version
                failure, hint = "the server ended the watch at once, without an event", 0.0
                reason = "ended_at_once"
            except (ApiGone, ApiTooLargeResourceVersion) as err:  # the version is unusable
                relist = True
                failure, _, reason = self._silence.describe(err)
                if self._progressed:
                    log.info("informer.relist", informer=self.name, reason=reason, error=failure)
                    continue
                hint = 0.0  # the backoff alone paces a relist
            except Exception as err:  # the loop must outlive any failure, a bug included
                failure, hint, reason = self._silence.describe(err)
            await self._pause(failure, hint, relist, reason)

    async def _pause(self, failure: str, hint: float, relist: bool, reason: str) -> None:
        self._error = failure
        delay = self._backoff.next_delay(hint)
        log.warning(
            "informer.retrying",
            informer=self.name,
            error=failure,
            reason=reason,
            delay_s=round(delay, 2),
            relist=relist,
        )
        await self._sleep(delay)

    async def _list(self) -> None:
        fresh: dict[Key, T] = {}
        token, version = "", ""
        # etcd cannot filter by field: a list by one (the pods of one node) read from etcd
        # reads every object of the resource, and a list without a version is read from etcd
        # before 1.31 (consistent reads from the cache, KEP-2340). The first one is read from
        # the apiserver's watch cache instead, as client-go's reflector does (resourceVersion
        # 0: any state, ``limit`` ignored); a relist (410, an etcd restore) reads the current
        # state, never an older one.
        from_cache = "0" if not self._version and "fieldSelector" in self._selectors else ""
        while True:
            page = await self._api.list(
                self.resource,
                Lane.BACKGROUND,
                selectors=self._selectors,
                limit=self._settings.page_size,
                continue_token=token,
                not_older_than="" if token else from_cache,
            )
            for document in page.get("items") or ():
                self._cache.decode_into(fresh, document)
            metadata = page.get("metadata") or {}
            version = str(metadata.get("resourceVersion") or version)
            token = str(metadata.get("continue") or "")
            if not token:
                break
        self._cache.replace(fresh)
        self._version = version
        self._silence.vouched()
        self.lists += 1
        self._synced.set()
        log.debug("informer.listed", informer=self.name, items=len(fresh), version=version)
        self._cache.notify("on_synced")

    async def _watch(self) -> None:
        low, high = self._settings.watch_timeout
        started, quiet = self._clock(), self._silence.limit()
        async with self._api.watch(
            self.resource,
            self._version,
            selectors=self._selectors,
            server_timeout=self._rng.randint(low, high),
            read_margin=self._settings.read_margin,
        ) as stream:
            self._silence.opened()
            if self._error:
                log.info("informer.watching", informer=self.name, after=self._error)
                self._error = ""
            self._heard = went_quiet = False
            try:
                went_quiet = await self._follow(stream, quiet)
            finally:
                lasted = went_quiet or self._clock() - started >= MIN_WATCH_SECONDS
                if lasted:
                    self._made_progress()
                # An event (a bookmark too) means the server has our version.
                self._silence.ended(
                    heard=self._heard, lasted=lasted, quiet_for=quiet if went_quiet else None
                )
        if went_quiet:
            log.debug("informer.quiet", informer=self.name, silent_s=round(quiet or 0.0, 1))

    async def _confirm_version(self) -> None:
        """Ask whether the server has reached ``_version``: a one-item list at least as new;
        raises ApiTooLargeResourceVersion when it has not (see the module docstring)."""
        await self._api.list(
            self.resource,
            Lane.BACKGROUND,
            selectors=self._selectors,
            limit=1,
            not_older_than=self._version,
        )
        self._silence.vouched()

    async def _follow(self, stream: WatchStream, quiet: float | None) -> bool:
        """Apply events until the server ends the stream (False) or ``quiet`` seconds pass
        without one (True: the caller checks the server with a new watch). A read cut short
        by that loses nothing: the version moves only with an applied event, and the next
        watch starts from it."""
        while True:
            try:
                async with asyncio.timeout(quiet):
                    event = await stream.next()  # never raises TimeoutError itself
            except TimeoutError:
                return True
            if event is None:
                return False
            self._made_progress()
            self._heard = True
            document = event.get("object")
            if not isinstance(document, dict):
                continue
            version = resource_version(document)
            kind = event.get("type")
            if kind in ("ADDED", "MODIFIED"):
                self._cache.upsert(document)
            elif kind == "DELETED":
                self._cache.delete(document)
            if version:
                self._version = version  # BOOKMARK events carry only this

    def _made_progress(self) -> None:
        if not self._progressed:
            self._progressed = True
            self._backoff.reset()
