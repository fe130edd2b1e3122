"""The mount-point check of a first publish and the SecretProviderClass re-read, in one hop.

A target the mount table does not know is inspected on disk (``VolumeMounter.inspect``); in
standalone mode the class lookup re-reads the manifest directory (names, sizes, mtimes). Both
are file-system work in a worker thread, and a paced publish pays a thread wake-up per hop, so
when the mounter and the class source have blocking forms (``ports_volumes.BlockingInspector``,
``ports.BlockingClassReader``) they run one after the other in ONE worker-thread call. The
inspection comes first and its error wins, as in upstream's order; the read is only installed
and looked up after it, on the event loop (``BlockingClassReader.get_read``).

When the class source also answers without I/O (``ports.CachedClassSource``), a first publish
can ask its provider with the class as held and run this check at the start of the store's
hop instead (``still_first_blocking``): one hop per publish, not two.
"""

from __future__ import annotations

from collections import OrderedDict

import structlog

from agent.aio.threads import run_blocking
from agent.model import SecretProviderClass, VolumeState
from agent.ports import BlockingClassReader, CachedClassSource, SecretProviderClassSource
from agent.ports_volumes import BlockingInspector, VolumeMounter

log = structlog.get_logger("agent.publish")


class PublishCheck:
    def __init__(self, mounter: VolumeMounter, spcs: SecretProviderClassSource) -> None:
        self._inspector = mounter if isinstance(mounter, BlockingInspector) else None
        self._reader = spcs if isinstance(spcs, BlockingClassReader) else None
        self._cache = spcs if isinstance(spcs, CachedClassSource) else None

    @property
    def joined(self) -> bool:
        """True when the check and the class read share one hop."""
        return self._inspector is not None and self._reader is not None

    def cached(self, namespace: str, name: str) -> SecretProviderClass | None:
        """The class as held, when :meth:`still_first_blocking` can check it in the store's
        hop (the mounter inspects in any thread); None: take the step-by-step path."""
        if self._cache is None or self._inspector is None:
            return None
        return self._cache.cached(namespace, name)

    def still_first_blocking(
        self, target: str, spc: SecretProviderClass
    ) -> tuple[bool, object | None]:
        """In the store's worker thread, before its mount: (True when ``target`` is no mount
        point yet and the class re-read (standalone) still holds ``spc``, as :meth:`cached`
        gave it; that re-read, for :meth:`install`, or None). False leaves all to the
        step-by-step path: a target mounted already (after a crash), a class edited meanwhile,
        a failed re-read (that path reads again and reports it). Raises what the inspection
        raised: its error comes first, as upstream's."""
        assert self._inspector is not None
        if self._inspector.inspect_blocking(target) is not None:
            return False, None
        if self._reader is None:
            return True, None
        try:
            read = self._reader.read_blocking()
        except Exception:
            return False, None
        return self._reader.read_holds(read, spc), read

    def install(self, read: object) -> None:
        """Install :meth:`still_first_blocking`'s re-read (on the event loop): an unrelated
        manifest change it found is then not read again by every later publish."""
        assert self._reader is not None
        self._reader.install(read)

    async def inspect_and_read(self, target: str) -> tuple[VolumeState | None, object | None]:
        """(``VolumeMounter.inspect``'s answer, the class read or None if it failed: the lookup
        then reads again and reports). Raises what the inspection raised."""
        return await run_blocking(self._inspect_and_read, target)

    def _inspect_and_read(self, target: str) -> tuple[VolumeState | None, object | None]:
        assert self._inspector is not None and self._reader is not None
        state = self._inspector.inspect_blocking(target)
        try:
            read = self._reader.read_blocking()
        except Exception as err:  # the lookup on the loop reads again and reports it
            log.debug("node_publish.class_read_retried", error_type=type(err).__name__)
            read = None
        return state, read

    async def get_read(self, read: object, namespace: str, name: str) -> SecretProviderClass:
        assert self._reader is not None
        return await self._reader.get_read(read, namespace, name)


class CheckFirst:
    """Targets whose publish checks the mount point before it asks the provider: the check
    found someone else's content there and left it alone (no rotation), or refused the target
    (on either path: the step-by-step one may have been taken for a provider's error).

    Kubelet publishes them again and again (``requiresRepublish`` on each pod sync, a refused
    call retried with backoff), and a first publish that asks first would ask the provider each
    time for nothing; upstream checks first. A target path names one pod's volume, so a path
    kept never stands for another's; past ``limit`` the oldest is dropped (its provider is then
    asked once more). A target whose problem went away only costs the step-by-step path's
    extra hop.
    """

    def __init__(self, limit: int = 256) -> None:
        self._targets: OrderedDict[str, None] = OrderedDict()
        self._limit = limit

    def add(self, target: str) -> None:
        self._targets[target] = None
        self._targets.move_to_end(target)
        if len(self._targets) > self._limit:
            self._targets.popitem(last=False)

    def __contains__(self, target: str) -> bool:
        return target in self._targets
