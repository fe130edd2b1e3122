"""What to tell the operator when a volume's file system is full (ENOSPC / EDQUOT).

A tmpfs volume is as large as ``--tmpfs-size`` (unset: the kernel's default, half of the node's
memory). tmpfs charges whole 4 KiB pages per file, and a rotation keeps the old and the new
version side by side until the swap, so a volume needs about twice its content's page footprint.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from agent.errors import VolumeFull
from agent.model import SecretFile

PAGE_BYTES = 4096
MIB = 2**20


def page_footprint(files: Sequence[SecretFile]) -> int:
    """Bytes the files occupy on a tmpfs: each file rounded up to whole pages."""
    return sum(math.ceil(len(f.contents) / PAGE_BYTES) * PAGE_BYTES for f in files)


@dataclass(frozen=True, slots=True)
class VolumeCapacity:
    """How big a volume's file system is; ``tmpfs`` False means a directory on the node's disk."""

    tmpfs: bool = False
    size_bytes: int | None = None

    def full(self, target: str, files: Sequence[SecretFile] = ()) -> VolumeFull:
        """The error for a write into ``target`` that ran out of space (no file contents)."""
        needed = page_footprint(files)
        what = (
            f"{len(files)} files of {sum(len(f.contents) for f in files)} bytes "
            f"({needed} bytes in 4 KiB pages)"
            if files
            else "the volume metadata"
        )
        if not self.tmpfs:
            return VolumeFull(f"no space left on the node's disk at {target} writing {what}")
        if self.size_bytes is None:
            return VolumeFull(
                f"the tmpfs at {target} is full writing {what}: --tmpfs-size is unset, so the "
                "kernel's default (half of the node's memory) applies and the node is short of "
                "memory; set --tmpfs-size to bound each volume"
            )
        suggested = max(math.ceil(2 * needed / MIB), math.ceil(self.size_bytes / MIB) + 1)
        return VolumeFull(
            f"the tmpfs at {target} is full writing {what}: --tmpfs-size is {self.size_bytes} "
            f"bytes; a rotation needs room for two versions side by side, so raise it to at "
            f"least --tmpfs-size={suggested}Mi"
        )
