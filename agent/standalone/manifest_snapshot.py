"""What one read of the standalone manifest directory holds, and how each document goes into it.

A ``Snapshot`` is built by standalone/directory_reload.py, one file at a time, and installed
whole by standalone/spc_source.py. ``load_document`` sorts each document (or List item): a
SecretProviderClass (decoded as the API server would take it, with a uid and a generation
that stay stable across restarts and reloads), a ``v1`` ServiceAccount (its annotations), a
``v1`` Node (its labels, standalone/nodes.py), a near miss of one of those kinds
(standalone/near_miss.py), or nothing. A class defined twice is unusable, and a broken one is
remembered by name, so a publish asking for it hears why rather than "not found".
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeGuard

from agent.documents.names import check_manifest_key, shown_name
from agent.documents.spc import InvalidDocument, Key, decode, identity, is_spc
from agent.model import SecretProviderClass
from agent.standalone.kinds import SERVICE_ACCOUNT_KIND
from agent.standalone.manifests import Unconverted
from agent.standalone.near_miss import near_miss
from agent.standalone.nodes import CLUSTER_SCOPED, is_node, load_node, string_map

DEFAULT_NAMESPACE = "default"
# (file name, inode, mtime in ns, size) of each manifest file, sorted by name.
Signature = tuple[tuple[str, int, int, int], ...]


@dataclass(slots=True)
class Snapshot:
    """What one read of the directory found; each read builds a new one, installed whole."""

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


def load_document(
    document: object,
    where: str,
    snapshot: Snapshot,
    origins: dict[Key, str],
    old: dict[Key, tuple[str, int]],
) -> None:
    """One document (or one item of a List) into ``snapshot``: a class, a ServiceAccount or a
    Node, a reported near miss, or nothing (another kind). A class that did not convert
    (``manifests.Unconverted``, reported already) is remembered as unusable by its name."""
    if isinstance(document, Unconverted):
        _note_unconverted(document, where, snapshot, origins)
        return
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


def _note_unconverted(
    document: Unconverted, where: str, snapshot: Snapshot, origins: dict[Key, str]
) -> None:
    if not is_spc(document.names):
        return
    try:
        key, _ = identity(document.names, DEFAULT_NAMESPACE)
    except InvalidDocument:
        return
    # The reason starts with where it failed (``multi.yaml (document 2).spec.parameters.x``).
    _remember_invalid(snapshot, origins, key, where, document.reason)


def _note_near_miss(document: object, where: str, snapshot: Snapshot) -> None:
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


def _remember_origin(snapshot: Snapshot, origins: dict[Key, str], key: Key, where: str) -> bool:
    """Record where ``key`` is defined; a second definition makes it unusable."""
    first = origins.get(key)
    if first is None:
        origins[key] = where
        return True
    reason = f"secretproviderclass {shown_key(key)} is defined in both {first} and {where}"
    snapshot.problems.append((where, reason))
    snapshot.classes.pop(key, None)
    snapshot.invalid[key] = reason
    return False


def _remember_invalid(
    snapshot: Snapshot, origins: dict[Key, str], key: Key, where: str, reason: str
) -> None:
    if _remember_origin(snapshot, origins, key, where):
        snapshot.invalid[key] = f"secretproviderclass {shown_key(key)} in {reason}"


def _is_service_account(document: object) -> TypeGuard[Mapping[str, object]]:
    return (
        isinstance(document, Mapping)
        and document.get("kind") == SERVICE_ACCOUNT_KIND
        and document.get("apiVersion") == "v1"
    )


def _load_service_account(document: Mapping[str, object], where: str, snapshot: Snapshot) -> None:
    try:
        key, metadata = identity(document, DEFAULT_NAMESPACE)
        check_manifest_key(*key)
        annotations = string_map(metadata, "annotations", f"serviceaccount {shown_key(key)}")
    except InvalidDocument as exc:
        snapshot.problems.append((where, exc.reason))
        return
    first = snapshot.service_accounts.get(key)
    if first is not None:
        # Example manifests often repeat one ServiceAccount per file; only a differing copy is a
        # problem, and then the first stays so a later file cannot swap an identity.
        if first != annotations:
            reason = f"serviceaccount {shown_key(key)} is defined twice with different annotations"
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


def shown_key(key: Key) -> str:
    """``namespace/name`` of a class or a service account for a message; a name a publish asked
    for or a manifest gave, which may be anything, quoted and cut past 80 characters
    (``shown_name``)."""
    return f"{shown_name(key[0])}/{shown_name(key[1])}"
