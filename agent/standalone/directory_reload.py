"""Re-reading the standalone manifest directory, in a worker thread, only when it changed.

The directory's ``Signature`` (the name, inode, mtime and size of each ``*.yaml``/``*.yml``
file directly inside it, symlinks followed as in a ConfigMap volume) says whether anything
changed since the last read; when it did, every file is read again into a new ``Snapshot``
(standalone/manifest_snapshot.py), carrying the classes' generations over. A file that cannot
be read or parsed (standalone/manifests.py) is recorded as broken and skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

from agent.documents.spc import Key
from agent.standalone.manifest_snapshot import Signature, Snapshot, load_document
from agent.standalone.manifests import UnreadableManifest, cap_problems, documents


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


def reload(directory: Path, previous: Snapshot) -> Snapshot:
    """Runs in a worker thread; returns ``previous`` itself when nothing changed."""
    signature = _signature(directory)
    if previous.loaded and signature == previous.signature:
        return previous
    # Generations outlive a class's absence so a fixed-then-restored class never goes back.
    snapshot = Snapshot(loaded=True, signature=signature, generations=dict(previous.generations))
    if signature is None:
        snapshot.problems.append((str(directory), "directory does not exist"))
        return snapshot
    origins: dict[Key, str] = {}
    for file_name, *_ in signature:
        _load_file(directory / file_name, snapshot, origins, previous.generations)
    return snapshot


def _load_file(
    path: Path, snapshot: Snapshot, origins: dict[Key, str], old: dict[Key, tuple[str, int]]
) -> None:
    start = len(snapshot.problems)
    try:
        found = documents(path, snapshot.problems)
    except UnreadableManifest as exc:
        snapshot.broken_files[path.name] = exc.reason
        snapshot.problems.append((path.name, exc.reason))
        return
    for where, document in found:
        load_document(document, where, snapshot, origins, old)
    cap_problems(snapshot.problems, start, path.name)
