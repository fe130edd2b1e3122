"""SecretProviderClasses, ServiceAccounts and the Node from YAML files in a directory (standalone).

The directory holds the same manifests one would ``kubectl apply``: every ``*.yaml``/``*.yml``
file directly inside it, multi-document allowed, a list (``v1`` ``kind: List``, a typed
``SecretProviderClassList``, ``ServiceAccountList`` or ``NodeList``, lists inside lists) read
as its items (standalone/lists.py). Each document is read as kubectl sends it to the API server
(sigs.k8s.io/yaml's YAML-to-JSON: ``0123`` is the integer 83, ``on`` a boolean,
``2024-01-01`` and ``1:30`` strings), and fields the CRD types as strings must then be strings,
as the API server's schema validation demands: an unquoted number in ``spec.parameters`` is
refused with an error naming the parameter, never read as some other text. ``v1``
ServiceAccount manifests there stand in for the API's service accounts: providers read cloud
identities from their annotations, and a ``v1`` Node manifest named like ``--nodeid`` for the
node's labels (standalone/nodes.py). Files are re-read only when their names, inodes, sizes
or mtimes change, and always in a worker thread so a slow disk never stalls the event loop.
A broken, oversized (``manifests.MAX_MANIFEST_BYTES``) or too dense (``goyaml_limits``) file
is reported and skipped; it never hides the classes defined in the other files. A document
whose ``kind`` or ``apiVersion`` is a slip from one the agent reads is reported too
(standalone/near_miss.py), and named when a publish asks for the class it meant.

This module is the source the agent asks: it installs each read, tells listeners of changed
classes, and answers lookups; standalone/directory_reload.py does the reading and
standalone/manifest_snapshot.py says what a read holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog

from agent.aio.threads import run_blocking
from agent.documents.spc import KIND
from agent.errors import (
    InvalidSecretProviderClass,
    SecretProviderClassNotFound,
    ServiceAccountNotFound,
)
from agent.model import SecretProviderClass
from agent.ports import ChangeListener
from agent.standalone.directory_reload import reload
from agent.standalone.manifest_snapshot import Snapshot, shown_key

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class _Read:
    """A re-read done in a worker thread (``read_blocking``), not yet installed."""

    base: Snapshot
    fresh: Snapshot


class DirectorySecretProviderClassSource:
    """Implements ``ports.SecretProviderClassSource`` and ``ports.ServiceAccountSource`` over a
    directory of manifests."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._snapshot = Snapshot()
        self._lock = asyncio.Lock()
        self._listeners: list[ChangeListener] = []

    def listen(self, listener: ChangeListener) -> None:
        """Tell ``listener`` of classes created or edited, whenever the directory is re-read."""
        self._listeners.append(listener)

    async def watch(self, period: float) -> None:
        """Re-read the directory every ``period`` seconds, so edits (a refresh-now or interval
        annotation) reach listeners without a publish; cheap while nothing changed (names,
        sizes and mtimes only)."""
        while True:
            await self.rescan()
            await asyncio.sleep(period)

    async def rescan(self) -> None:
        await self._refresh()

    async def get(self, namespace: str, name: str) -> SecretProviderClass:
        return self._lookup(await self._refresh(), namespace, name)

    def read_blocking(self) -> _Read:
        """The directory re-read of :meth:`get`, in the calling worker thread
        (``ports.BlockingClassReader``: it joins the publish's mount-point check)."""
        base = self._snapshot
        return _Read(base, reload(self.directory, base))

    async def get_read(self, read: object, namespace: str, name: str) -> SecretProviderClass:
        """:meth:`get` answered from :meth:`read_blocking`'s ``read``; re-read (one more hop)
        in the rare case another read was installed since that one started."""
        assert isinstance(read, _Read)
        if self._commit(read.base, read.fresh):
            return self._lookup(self._snapshot, namespace, name)
        return await self.get(namespace, name)

    def cached(self, namespace: str, name: str) -> SecretProviderClass | None:
        """The class as last read (``ports.CachedClassSource``); None before the first read."""
        return self._snapshot.classes.get((namespace, name))

    def install(self, read: object) -> None:
        """Install :meth:`read_blocking`'s ``read`` unless a newer one was installed since
        (``ports.BlockingClassReader``): what a publish's hop read is not read again."""
        assert isinstance(read, _Read)
        self._commit(read.base, read.fresh)

    def read_holds(self, read: object, spc: SecretProviderClass) -> bool:
        """True when ``read`` (:meth:`read_blocking`) holds ``spc`` as it was: unchanged, or
        rebuilt equal (any change in the directory rebuilds every class, also those it left as
        they were; an answer asked with an equal class is the one its edit would get)."""
        assert isinstance(read, _Read)
        return read.fresh.classes.get((spc.namespace, spc.name)) == spc

    def _lookup(self, snapshot: Snapshot, namespace: str, name: str) -> SecretProviderClass:
        key = (namespace, name)
        found = snapshot.classes.get(key)
        if found is not None:
            return found
        if key in snapshot.invalid:
            raise InvalidSecretProviderClass(snapshot.invalid[key])
        message = f"secretproviderclass {shown_key(key)} not found in {self.directory}"
        if snapshot.signature is None:
            message += " (directory does not exist)"
        message += _see(snapshot, KIND, namespace, name)
        if snapshot.broken_files:
            unreadable = "; ".join(f"{f}: {r}" for f, r in sorted(snapshot.broken_files.items()))
            message += f" (unreadable files: {unreadable})"
        raise SecretProviderClassNotFound(message)

    async def annotations(self, namespace: str, name: str) -> Mapping[str, str]:
        """A ServiceAccount manifest's ``metadata.annotations``; ServiceAccountNotFound if none."""
        snapshot = await self._refresh()
        found = snapshot.service_accounts.get((namespace, name))
        if found is None:
            raise ServiceAccountNotFound(
                f"serviceaccount {shown_key((namespace, name))} not found in {self.directory} "
                "(standalone mode reads ServiceAccount manifests from that directory)"
                + _see(snapshot, "ServiceAccount", namespace, name)
            )
        return found

    async def node_labels(self, name: str) -> Mapping[str, str] | None:
        """A Node manifest's ``metadata.labels``; None when there is no manifest ``name``."""
        snapshot = await self._refresh()
        return snapshot.nodes.get(name)

    def near_miss_note(self, kind: str, namespace: str, name: str) -> str:
        """`` (see <where>: <why>)`` for a document of the last read skipped for a slip in its
        ``kind`` or ``apiVersion`` that meant ``kind`` ``namespace/name`` (a cluster-scoped
        kind's namespace is ""); "" when there is none. For "not found" messages."""
        return _see(self._snapshot, kind, namespace, name)

    async def _refresh(self) -> Snapshot:
        # One reload at a time; callers that queue behind it reuse its result via the signature.
        async with self._lock:
            while True:
                base = self._snapshot
                fresh = await run_blocking(reload, self.directory, base)
                if self._commit(base, fresh):
                    return self._snapshot

    def _commit(self, base: Snapshot, fresh: Snapshot) -> bool:
        """Install ``fresh`` (read on top of ``base``); False, installing nothing, when another
        read was installed since ``base`` (the caller reads again: no older read ever replaces
        a newer one, and listeners hear of each change once)."""
        if self._snapshot is not base:
            return False
        if fresh is not base:
            self._snapshot = fresh
            for file, reason in fresh.problems:
                log.warning("standalone.spc_invalid", file=file, reason=reason)
            self._notify(base, fresh)
        return True

    def _notify(self, previous: Snapshot, fresh: Snapshot) -> None:
        for key, spc in fresh.classes.items():
            old = previous.classes.get(key)
            if old != spc:
                for listener in self._listeners:
                    listener.class_changed(old, spc)


def _see(snapshot: Snapshot, kind: str, namespace: str, name: str) -> str:
    near = snapshot.near_misses.get((kind, namespace, name))
    return f" (see {near})" if near else ""
