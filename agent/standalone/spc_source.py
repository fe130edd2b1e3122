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
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeGuard

import structlog

from agent.aio.threads import run_blocking
from agent.documents.names import check_manifest_key, shown_name
from agent.documents.spc import KIND, InvalidDocument, Key, decode, identity, is_spc
from agent.errors import (
    InvalidSecretProviderClass,
    SecretProviderClassNotFound,
    ServiceAccountNotFound,
)
from agent.model import SecretProviderClass
from agent.ports import ChangeListener
from agent.standalone.kinds import SERVICE_ACCOUNT_KIND
from agent.standalone.manifests import UnreadableManifest, cap_problems, documents
from agent.standalone.near_miss import near_miss
from agent.standalone.nodes import CLUSTER_SCOPED, is_node, load_node, string_map

DEFAULT_NAMESPACE = "default"
Signature = tuple[tuple[str, int, int, int], ...]

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class _Snapshot:
    loaded: bool = False
    signature: Signature | None = None
    classes: dict[Key, SecretProviderClass] = field(default_factory=dict)
    # (namespace, name) -> why it cannot be used; get() reports it instead of "not found".
    invalid: dict[Key, str] = field(default_factory=dict)
    # Files that could not be read or parsed at all (their names are unknown).
    broken_files: dict[str, str] = field(default_factory=dict)
    # (namespace, name) -> (spec digest, generation), carried across reloads.
    generations: dict[Key, tuple[str, int]] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)
    # (namespace, name) -> metadata.annotations of a ServiceAccount manifest.
    service_accounts: dict[Key, dict[str, str]] = field(default_factory=dict)
    # Node name -> metadata.labels of a Node manifest.
    nodes: dict[str, dict[str, str]] = field(default_factory=dict)
    # (kind meant, namespace, name) -> "where: why" of a document skipped for a slip in its
    # kind or apiVersion; "not found" for that name points at it.
    near_misses: dict[tuple[str, str, str], str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Read:
    """A re-read done in a worker thread (``read_blocking``), not yet installed."""

    base: _Snapshot
    fresh: _Snapshot


class DirectorySecretProviderClassSource:
    """Implements ``ports.SecretProviderClassSource`` and ``ports.ServiceAccountSource`` over a
    directory of manifests."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._snapshot = _Snapshot()
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
        return _Read(base, _reload(self.directory, base))

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

    def _lookup(self, snapshot: _Snapshot, namespace: str, name: str) -> SecretProviderClass:
        key = (namespace, name)
        found = snapshot.classes.get(key)
        if found is not None:
            return found
        if key in snapshot.invalid:
            raise InvalidSecretProviderClass(snapshot.invalid[key])
        message = f"secretproviderclass {_ref(key)} not found in {self.directory}"
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
                f"serviceaccount {_ref((namespace, name))} not found in {self.directory} "
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

    async def _refresh(self) -> _Snapshot:
        # One reload at a time; callers that queue behind it reuse its result via the signature.
        async with self._lock:
            while True:
                base = self._snapshot
                fresh = await run_blocking(_reload, self.directory, base)
                if self._commit(base, fresh):
                    return self._snapshot

    def _commit(self, base: _Snapshot, fresh: _Snapshot) -> bool:
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

    def _notify(self, previous: _Snapshot, fresh: _Snapshot) -> None:
        for key, spc in fresh.classes.items():
            old = previous.classes.get(key)
            if old != spc:
                for listener in self._listeners:
                    listener.class_changed(old, spc)


def _signature(directory: Path) -> Signature | None:
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return None
    rows = []
    for entry in entries:
        if entry.name.startswith(".") or not entry.name.endswith((".yaml", ".yml")):
            continue
        try:
            st = entry.stat()  # follows symlinks, as in a ConfigMap volume's ..data layout
        except OSError:
            continue
        if entry.is_file():
            rows.append((entry.name, st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(sorted(rows))


def _reload(directory: Path, previous: _Snapshot) -> _Snapshot:
    """Runs in a worker thread; returns ``previous`` itself when nothing changed."""
    signature = _signature(directory)
    if previous.loaded and signature == previous.signature:
        return previous
    # Generations outlive a class's absence so a fixed-then-restored class never goes back.
    snapshot = _Snapshot(loaded=True, signature=signature, generations=dict(previous.generations))
    if signature is None:
        snapshot.problems.append((str(directory), "directory does not exist"))
        return snapshot
    origins: dict[Key, str] = {}
    for file_name, *_ in signature:
        _load_file(directory / file_name, snapshot, origins, previous.generations)
    return snapshot


def _load_file(
    path: Path, snapshot: _Snapshot, origins: dict[Key, str], old: dict[Key, tuple[str, int]]
) -> None:
    start = len(snapshot.problems)
    try:
        found = documents(path, snapshot.problems)
    except UnreadableManifest as exc:
        snapshot.broken_files[path.name] = exc.reason
        snapshot.problems.append((path.name, exc.reason))
        return
    for where, document in found:
        _load_document(document, where, snapshot, origins, old)
    cap_problems(snapshot.problems, start, path.name)


def _load_document(
    document: object,
    where: str,
    snapshot: _Snapshot,
    origins: dict[Key, str],
    old: dict[Key, tuple[str, int]],
) -> None:
    """One document (or one item of a List) into ``snapshot``: a class, a ServiceAccount or a
    Node, a reported near miss, or nothing (another kind)."""
    if _is_service_account(document):
        _load_service_account(document, where, snapshot)
        return
    if is_node(document):
        problems: list[str] = []
        load_node(document, snapshot.nodes, problems)
        snapshot.problems.extend((where, reason) for reason in problems)
        return
    if not is_spc(document):
        _note_near_miss(document, where, snapshot)
        return
    try:
        spc = _to_spc(document, old)
    except InvalidDocument as exc:
        snapshot.problems.append((where, exc.reason))
        if exc.key is not None:
            _remember_invalid(snapshot, origins, exc.key, where, f"{where}: {exc.reason}")
        return
    key = (spc.namespace, spc.name)
    if _remember_origin(snapshot, origins, key, where):
        snapshot.classes[key] = spc
        snapshot.generations[key] = (_digest(document), spc.generation)


def _note_near_miss(document: object, where: str, snapshot: _Snapshot) -> None:
    if not isinstance(document, Mapping) or (missed := near_miss(document)) is None:
        return
    meant, reason = missed
    snapshot.problems.append((where, reason))
    try:
        (namespace, name), _ = identity(document, DEFAULT_NAMESPACE)
    except InvalidDocument:
        return
    if meant in CLUSTER_SCOPED:
        namespace = ""  # as load_node: a Node's namespace is ignored
    snapshot.near_misses[(meant, namespace, name)] = f"{where}: {reason}"


def _see(snapshot: _Snapshot, kind: str, namespace: str, name: str) -> str:
    near = snapshot.near_misses.get((kind, namespace, name))
    return f" (see {near})" if near else ""


def _remember_origin(snapshot: _Snapshot, origins: dict[Key, str], key: Key, where: str) -> bool:
    """Record where ``key`` is defined; a second definition makes it unusable."""
    first = origins.get(key)
    if first is None:
        origins[key] = where
        return True
    reason = f"secretproviderclass {_ref(key)} is defined in both {first} and {where}"
    snapshot.problems.append((where, reason))
    snapshot.classes.pop(key, None)
    snapshot.invalid[key] = reason
    return False


def _remember_invalid(
    snapshot: _Snapshot, origins: dict[Key, str], key: Key, where: str, reason: str
) -> None:
    if _remember_origin(snapshot, origins, key, where):
        snapshot.invalid[key] = f"secretproviderclass {_ref(key)} in {reason}"


def _ref(key: Key) -> str:
    """``namespace/name`` of a class or a service account for a message; a name a publish asked
    for or a manifest gave, which may be anything, quoted and cut past 80 characters
    (``shown_name``)."""
    return f"{shown_name(key[0])}/{shown_name(key[1])}"


def _is_service_account(document: object) -> TypeGuard[Mapping[str, object]]:
    return (
        isinstance(document, Mapping)
        and document.get("kind") == SERVICE_ACCOUNT_KIND
        and document.get("apiVersion") == "v1"
    )


def _load_service_account(document: Mapping[str, object], where: str, snapshot: _Snapshot) -> None:
    try:
        key, metadata = identity(document, DEFAULT_NAMESPACE)
        check_manifest_key(*key)
        annotations = string_map(metadata, "annotations", f"serviceaccount {_ref(key)}")
    except InvalidDocument as exc:
        snapshot.problems.append((where, exc.reason))
        return
    first = snapshot.service_accounts.get(key)
    if first is not None:
        # Example manifests often repeat one ServiceAccount per file; only a differing copy is a
        # problem, and then the first stays so a later file cannot swap an identity.
        if first != annotations:
            reason = f"serviceaccount {_ref(key)} is defined twice with different annotations"
            snapshot.problems.append((where, reason))
        return
    snapshot.service_accounts[key] = dict(annotations)


def _to_spc(document: Mapping[str, object], old: dict[Key, tuple[str, int]]) -> SecretProviderClass:
    check_manifest_key(*identity(document, DEFAULT_NAMESPACE)[0])
    digest = _digest(document)
    return decode(
        document,
        DEFAULT_NAMESPACE,
        _uid,
        lambda metadata, key: _generation(metadata, key, digest, old),
    )


def _uid(metadata: Mapping[str, object], key: Key) -> str:
    uid = metadata.get("uid")
    if isinstance(uid, str) and uid:
        return uid
    # Stable across restarts so fetch keys and status records keep matching.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"standalone:{key[0]}/{key[1]}"))


def _generation(
    metadata: Mapping[str, object], key: Key, digest: str, old: dict[Key, tuple[str, int]]
) -> int:
    given = metadata.get("generation")
    if isinstance(given, int) and not isinstance(given, bool) and given > 0:
        return given
    # Like the API server: bump only when the spec changes, so rotation sees a new version.
    previous = old.get(key)
    if previous is None:
        return 1
    return previous[1] if previous[0] == digest else previous[1] + 1


def _digest(document: Mapping[str, object]) -> str:
    spec = json.dumps(document.get("spec"), sort_keys=True, default=str)
    return hashlib.sha256(spec.encode()).hexdigest()
