"""The Windows volume writer: every file replaced atomically, no symlinks, no privileges.

Upstream's Windows writer keeps the Linux layout (``..data`` and one symlink per name) and
swaps versions by *removing* ``..data`` and creating it again: between the two every file of
the volume is missing, and creating a symlink needs SeCreateSymbolicLinkPrivilege. A
directory junction needs no privilege, but junctions hold absolute host paths (which do not
resolve inside a container's view of the volume) and cannot point at files; and Windows
cannot rename a directory (or a directory link) over an existing one, so no "swap one link"
scheme is atomic there.

This writer makes what Windows can do atomically the unit: one file. Each changed file is
written to ``..tmp-<hex>`` beside it, flushed to the disk, and renamed over the old one
(``os.replace``: MoveFileEx with MOVEFILE_REPLACE_EXISTING). The guarantee, for a reader:

- a file present before and after a write is never missing and never partial: it has the old
  content or the new one;
- a write that changes several files is *not* one atomic step: for the moment between two
  renames a reader can see the new certificate with the old key (upstream's Windows swap
  shows no files at all at that moment); files the payload no longer has go first;
- after a crash or power cut mid-write, each file is old or new (flushed before rename), and
  the next write (or unpublish) finishes the job from the manifest (``layout``).

File modes and owners are POSIX bits: they are not applied on Windows (upstream turns a mode
without owner-write into the read-only attribute, which would make the next rename fail);
the files get the ACLs inherited from the kubelet pods directory.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Sequence

from agent import crashpoints
from agent.aio.threads import run_blocking
from agent.errors import FileWriteError, PayloadError
from agent.fs.capacity import VolumeCapacity
from agent.fs.layout import METADATA_FILE
from agent.fs.paths import DEFAULT_MAX_TOTAL_BYTES, validate_payload
from agent.fs.windows.entries import (
    is_link_like,
    is_plain_dir,
    is_plain_file,
    lstat_or_none,
    plain_file,
    reached,
    remove_path,
    unlink,
)
from agent.fs.windows.layout import (
    MANIFEST_FILE,
    TMP_PREFIX,
    read_manifest,
    write_durably,
    write_manifest,
)
from agent.fs.windows.volumes import PathVolumes
from agent.model import SecretFile
from agent.platform.winnames import name_key, path_length_problem

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_TMP_HEX_BYTES = 6
TMP_NAME_CHARS = len(TMP_PREFIX) + 2 * _TMP_HEX_BYTES
# The longest name the agent gives a file of its own (layout.replace_durably's temporary).
OWN_TMP_SAMPLE = max(f"{MANIFEST_FILE}.{'0' * 8}.tmp", f"{METADATA_FILE}.{'0' * 8}.tmp", key=len)


def write_files(directory: str, files: Sequence[SecretFile]) -> bool:
    """Make ``directory`` hold exactly ``files`` (validated by the caller); False when it
    already did. OSError propagates; the caller turns it into the agent's errors."""
    manifest = read_manifest(directory)
    old = list(manifest.files) if manifest else []
    wanted = {name_key(f.path) for f in files}
    stale = [path for path in old if name_key(path) not in wanted]
    changed = [f for f in files if not _holds(directory, f)]
    _sweep_temporaries(directory, files)
    if not changed and not stale and manifest is not None and manifest.complete:
        return False
    # Recorded before any of them exists: a crash never leaves an unlisted file of ours.
    write_manifest(directory, [*old, *(f.path for f in files)], complete=False)
    crashpoints.reached("write.listed")
    # Stale files first: a name that turns from a directory into a file (or back) then
    # finds its place free.
    for path in stale:
        _remove_stale(directory, path, wanted)
    for file in changed:
        _replace(directory, file)
        crashpoints.reached("write.file_replaced")
    write_manifest(directory, [f.path for f in files], complete=True)
    return True


def _local(directory: str, path: str) -> str:
    return os.path.join(directory, *path.split("/"))


def _holds(directory: str, file: SecretFile) -> bool:
    """The file is there, reached through plain directories, with exactly these bytes."""
    found = plain_file(directory, file.path)
    if found is None or found[1].st_size != len(file.contents):
        return False
    with open(found[0], "rb") as handle:
        return handle.read(len(file.contents) + 1) == file.contents


def _directory_for(directory: str, parts: list[str]) -> str:
    """Create the payload's directories as needed; a link or file in the way is replaced
    (it is the agent's volume: nothing there may redirect a write)."""
    current = directory
    for name in parts:
        current = os.path.join(current, name)
        info = lstat_or_none(current)
        if info is not None and not is_plain_dir(info):
            remove_path(current)
            info = None
        if info is None:
            os.mkdir(current, 0o755)
    return current


def _replace(directory: str, file: SecretFile) -> None:
    parts = file.path.split("/")
    parent = _directory_for(directory, parts[:-1])
    final = os.path.join(parent, parts[-1])
    info = lstat_or_none(final)
    if info is not None and (is_link_like(info) or not is_plain_file(info)):
        remove_path(final)  # a directory the old payload had here, or a planted link
    tmp = os.path.join(parent, f"{TMP_PREFIX}{secrets.token_hex(_TMP_HEX_BYTES)}")
    try:
        write_durably(tmp, file.contents)
        os.replace(tmp, final)
    except BaseException:
        unlink(tmp)
        raise


def _remove_stale(directory: str, path: str, wanted: set[str]) -> None:
    """Remove a file the payload no longer has, then its directories that nothing needs.
    Only through plain directories: a link planted on the way is never followed."""
    local = reached(directory, path)
    if local is None:
        return  # a directory on the way is gone, or redirects: nothing of ours behind it
    remove_path(local)
    parts = path.split("/")[:-1]
    while parts:
        prefix = "/".join(parts)
        if any(key.startswith(name_key(prefix) + "/") for key in wanted):
            return
        try:
            os.rmdir(_local(directory, prefix))
        except OSError:
            return  # not empty (someone else's file) or already gone
        parts.pop()


def _sweep_temporaries(directory: str, files: Sequence[SecretFile]) -> None:
    """Remove ``..tmp-*`` files an interrupted write left in the directories it writes to."""
    seen: set[str] = set()
    for file in files:
        parts = file.path.split("/")[:-1]
        for depth in range(len(parts) + 1):
            folder = _local(directory, "/".join(parts[:depth])) if depth else directory
            if folder in seen:
                continue
            seen.add(folder)
            info = lstat_or_none(folder)
            if info is None or not is_plain_dir(info):
                break
            with os.scandir(folder) as entries:
                leftovers = [e.path for e in entries if e.name.startswith(TMP_PREFIX)]
            for leftover in leftovers:
                unlink(leftover)


def _check_lengths(target: str, files: Sequence[SecretFile]) -> None:
    """Refuse, before anything is written, a payload a node without long paths could only
    write in part: each file, its directories and its temporary file below the target path
    (the node's own spelling), and the manifest's temporary file, must fit in MAX_PATH."""
    for path in (OWN_TMP_SAMPLE, *(f.path for f in files)):
        problem = path_length_problem(target, path, TMP_NAME_CHARS)
        if problem is not None:
            raise PayloadError(f"invalid file path {path!r} below target path {target}: {problem}")


class FileReplaceWriter:
    """``PayloadWriter`` port for Windows volumes: checks the target path, then validates
    (Windows name rules) and writes in a worker thread. ``uid``/``gid`` are not applied."""

    def __init__(
        self,
        volumes: PathVolumes,
        *,
        max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
        capacity: VolumeCapacity | None = None,
        long_paths: bool = False,
    ) -> None:
        self._volumes = volumes
        self._max_total_bytes = max_total_bytes
        self._capacity = capacity or VolumeCapacity()
        self._long_paths = long_paths

    async def write(
        self, target: str, files: Sequence[SecretFile], *, gid: int | None = None
    ) -> bool:
        return await run_blocking(self.write_blocking, target, files)

    def write_blocking(
        self, target: str, files: Sequence[SecretFile], gid: int | None = None
    ) -> bool:
        """:meth:`write` in the calling worker thread (``ports_volumes.BlockingPayloadWriter``).
        ``gid`` (a pod's fsGroup) is ignored: Windows files have no POSIX group (and Kubernetes
        refuses fsGroup on a pod whose spec.os.name is windows)."""
        validate_payload(files, max_total_bytes=self._max_total_bytes, windows=True)
        if not self._long_paths:
            _check_lengths(self._volumes.parse(target).path, files)
        try:
            directory = self._volumes.target_dir_of(target)
        except FileNotFoundError:
            raise FileWriteError(f"target directory {target} does not exist") from None
        try:
            return write_files(directory, files)
        except OSError as exc:
            if exc.errno in _NO_SPACE:
                raise self._capacity.full(target, files) from None
            raise FileWriteError(
                f"failed to write files in {target}: {exc.strerror or exc}"
            ) from None
