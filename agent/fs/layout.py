"""The names the agent writes in a volume, and how to tell its own leftovers from anyone else's.

A volume the atomic writer manages holds only these (upstream's and kubelet's writers make the
same layout, so a volume written by the upstream driver is recognised too)::

    ..data -> ..2026_04_30_12_00_00.abc123     a timestamped directory, swapped atomically
    ..data_tmp                                  the swap's temporary link (after a crash)
    ..2026_04_30_12_00_00.abc123/               the files of one version
    <name> -> ..data/<name>                     one visible link per top-level name
    ..agent-volume.json (+ .tmp while saved)    the agent's metadata (non-secret)

Anything else in a target was not written by the agent: it is never deleted, and a target that
holds it and is not a mount is never mounted over (see :func:`survey`). Names are judged here;
what is removed below them (only the kinds the writer makes, never another mount) is
agent/fs/removal.py's. In tmpfs mode nothing on the node's disk below the tmpfs is the agent's
(``Survey.disowned``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from agent.errors import InvalidRequest
from agent.model import VolumeContent
from agent.targets import KubeletTarget, shown

DATA_DIR = "..data"
DATA_TMP = "..data_tmp"
METADATA_FILE = "..agent-volume.json"
RESERVED_PREFIX = ".."
# Matches both our directories and those written by the Go driver or kubelet, so a volume
# written by upstream is taken over cleanly.
TS_DIR_RE = re.compile(r"^\.\.\d{4}(?:_\d{2}){5}\..+$")


def is_ts_dir_name(name: str) -> bool:
    return "/" not in name and TS_DIR_RE.fullmatch(name) is not None


@dataclass(frozen=True, slots=True)
class Survey:
    """What one scan of a target directory found."""

    artefacts: tuple[str, ...]  # entries the writer or the metadata store makes
    foreign: tuple[str, ...]  # everything else
    complete: bool  # ``..data`` links to a timestamped directory that exists
    has_metadata: bool

    def disowned(self) -> Survey:
        """The same entries, none of them the agent's (the node's disk below a tmpfs mount)."""
        everything = tuple(sorted(self.artefacts + self.foreign))
        return Survey(artefacts=(), foreign=everything, complete=False, has_metadata=False)

    @property
    def content(self) -> VolumeContent:
        if self.foreign:
            return VolumeContent.FOREIGN
        if not self.artefacts:
            return VolumeContent.EMPTY
        return VolumeContent.COMPLETE if self.complete else VolumeContent.PARTIAL


def survey(dir_fd: int) -> Survey:
    """Sort the entries of the directory ``dir_fd`` into the agent's artefacts and the rest."""
    artefacts: list[str] = []
    foreign: list[str] = []
    ts_dirs: set[str] = set()
    data_link: str | None = None
    with os.scandir(dir_fd) as entries:
        for entry in entries:
            kind = _artefact_kind(dir_fd, entry)
            (artefacts if kind else foreign).append(entry.name)
            if kind == "ts":
                ts_dirs.add(entry.name)
            elif kind == "data":
                data_link = os.readlink(DATA_DIR, dir_fd=dir_fd)
    return Survey(
        artefacts=tuple(sorted(artefacts)),
        foreign=tuple(sorted(foreign)),
        complete=data_link is not None and data_link in ts_dirs,
        has_metadata=METADATA_FILE in artefacts,
    )


def _artefact_kind(dir_fd: int, entry: os.DirEntry[str]) -> str:
    """``""`` for a foreign entry, else which artefact it is."""
    name = entry.name
    if entry.is_symlink():
        return _link_kind(dir_fd, name)
    if entry.is_dir(follow_symlinks=False):
        return "ts" if is_ts_dir_name(name) else ""
    is_metadata = name == METADATA_FILE or (
        name.startswith(METADATA_FILE + ".") and name.endswith(".tmp")
    )
    return "metadata" if is_metadata and entry.is_file(follow_symlinks=False) else ""


def _link_kind(dir_fd: int, name: str) -> str:
    if name == DATA_DIR:
        return "data"
    if name == DATA_TMP:
        return "tmp"
    try:
        return "link" if os.readlink(name, dir_fd=dir_fd) == f"{DATA_DIR}/{name}" else ""
    except OSError:
        return ""


def refuse_foreign(target: KubeletTarget, foreign: Sequence[str]) -> InvalidRequest:
    """The refusal for a target holding what the agent did not write: ``foreign`` names it
    (paths relative to the target; names, never content)."""
    names = ", ".join(repr(name) for name in foreign[:3])
    more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
    return InvalidRequest(
        f"Target path {shown(target.path)} holds files the agent did not write "
        f"({names}{more}); the agent never mounts over or deletes them"
    )


def refuse_other_file_system(target: KubeletTarget) -> InvalidRequest:
    """The refusal for a target where another file system than a tmpfs is mounted (a bind mount
    of a directory on the node's disk, say): in tmpfs mode that is never the agent's volume."""
    return InvalidRequest(
        f"Target path {shown(target.path)} is the mount of another file system, not a tmpfs: "
        "the agent writes secrets only into a tmpfs of its own, never into someone else's mount"
    )


def refuse_not_tmpfs(target: str) -> InvalidRequest:
    """The refusal of a file operation on a volume (a write, a metadata save or load, a read)
    whose target is no tmpfs in tmpfs mode: another file system was mounted over it, or its
    tmpfs is gone and the directory below is the node's disk."""
    return InvalidRequest(
        f"Target path {shown(target)} is not a tmpfs (another file system is mounted there, or "
        "the volume's tmpfs is gone): in tmpfs mode the agent reads and writes a volume's files "
        "only in its own tmpfs"
    )
