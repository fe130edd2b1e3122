"""The names the Windows writer makes in a volume, and how a survey tells them from others.

A Windows volume holds the files themselves (no ``..data`` swap: see
``agent.fs.windows.writer``), plus::

    ..agent-files.json               the writer's manifest: every payload path it may have made
    ..agent-files.json.<hex>.tmp     the manifest while it is replaced
    ..agent-volume.json (+ .tmp)     the agent's metadata (``agent.fs.metadata``'s names)
    ..tmp-<hex>                      a file being written (any directory of the payload)

The manifest is what makes files the agent's own: it is saved *before* any file it names is
created and shrunk only *after* a removed file is gone, so after a crash at any point every
payload file on disk is listed, and unpublish can remove all of them and nothing else. It is
marked ``complete`` only by the save that ends a write, so a survey after a crash mid-write
reports the volume as partial. A
volume the upstream driver wrote on Windows (``..data`` and timestamped directories, top-level
symlinks ``name -> ..data\\name``) is recognised too, so the agent can take it over.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from agent.errors import PayloadError
from agent.fs.layout import DATA_DIR, DATA_TMP, METADATA_FILE, Survey, is_ts_dir_name
from agent.fs.paths import WINDOWS_TMP_PREFIX, validate_path
from agent.fs.windows.entries import is_link_like, is_plain_file, lstat_or_none, unlink
from agent.platform.winnames import name_key

MANIFEST_FILE = "..agent-files.json"
TMP_PREFIX = WINDOWS_TMP_PREFIX


@dataclass(frozen=True, slots=True)
class Manifest:
    files: tuple[str, ...]  # payload paths, "/"-separated as the provider named them
    complete: bool  # saved by the end of a write (else: a write was under way)


def read_manifest(directory: str) -> Manifest | None:
    """The manifest in ``directory``; None when there is none (or it is not the agent's: a
    link, not JSON, not the expected shape)."""
    path = os.path.join(directory, MANIFEST_FILE)
    info = lstat_or_none(path)
    if info is None or not is_plain_file(info):
        return None
    try:
        with open(path, "rb") as handle:
            document = json.loads(handle.read())
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict):
        return None
    files, complete = document.get("files"), document.get("complete")
    if not isinstance(files, list) or not all(isinstance(p, str) for p in files):
        return None
    return Manifest(tuple(p for p in files if _could_be_ours(p)), complete is True)


def _could_be_ours(path: str) -> bool:
    """The manifest lies in the volume, where a pod or anyone with write access to kubelet's
    directory could change it: an entry the writer could not have made (``..``, an absolute
    or drive path, a stream, a device name: the payload rules of a Windows node) is ignored,
    never used as a path to remove."""
    try:
        validate_path(path, windows=True)
    except PayloadError:
        return False
    return True


def write_manifest(directory: str, paths: Iterable[str], *, complete: bool) -> None:
    """Replace the manifest atomically (``replace_durably``)."""
    document = json.dumps({"files": sorted(set(paths)), "complete": complete}).encode()
    replace_durably(directory, MANIFEST_FILE, document)


def replace_durably(directory: str, name: str, data: bytes) -> None:
    """Replace ``directory/name`` atomically: ``<name>.<hex>.tmp`` written, flushed, then
    renamed over it; the temporary file is removed when any step fails."""
    tmp = os.path.join(directory, f"{name}.{secrets.token_hex(4)}.tmp")
    try:
        write_durably(tmp, data)
        os.replace(tmp, os.path.join(directory, name))
    except BaseException:
        unlink(tmp)
        raise


def write_durably(path: str, data: bytes) -> None:
    """Create ``path`` exclusively and flush it to the disk before it is renamed into place:
    on a node's disk (not tmpfs) a rename that outlives a power cut must not reveal an empty
    file."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _is_own_name(name: str) -> bool:
    if name in (MANIFEST_FILE, METADATA_FILE, DATA_DIR, DATA_TMP) or name.startswith(TMP_PREFIX):
        return True
    if name.endswith(".tmp") and name.startswith((MANIFEST_FILE + ".", METADATA_FILE + ".")):
        return True
    return is_ts_dir_name(name)


def _is_upstream_link(directory: str, name: str) -> bool:
    try:
        target = os.readlink(os.path.join(directory, name))
    except OSError:
        return False
    return target.replace("\\", "/") == f"{DATA_DIR}/{name}"


def survey_directory(directory: str) -> Survey:
    """Sort the entries of ``directory`` into the agent's artefacts and everything else."""
    manifest = read_manifest(directory)
    listed = {name_key(path.split("/", 1)[0]) for path in manifest.files} if manifest else set()
    artefacts: list[str] = []
    foreign: list[str] = []
    with os.scandir(directory) as entries:
        for entry in entries:
            name = entry.name
            link = is_link_like(entry.stat(follow_symlinks=False))
            ours = (
                _is_own_name(name)
                or (not link and name_key(name) in listed)
                or (link and _is_upstream_link(directory, name))
            )
            (artefacts if ours else foreign).append(name)
    return Survey(
        artefacts=tuple(sorted(artefacts)),
        foreign=tuple(sorted(foreign)),
        complete=manifest is not None and manifest.complete,
        has_metadata=METADATA_FILE in artefacts,
    )
