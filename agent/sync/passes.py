"""What secret sync's syncer and its re-sync loop (``resync``) tell each other: what one
volume's sync did (``SyncOutcome``), what a pass did with its volumes (``PassCounts``: synced
and skipped are told apart), and where the syncer hands volumes to sync again (``FollowUps``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol


class SyncOutcome(enum.Enum):
    """What one volume's sync did."""

    # Its Secrets were checked against its files, and those its class no longer names let go
    # of (failures are reported, and retried sooner).
    SYNCED = "synced"
    SKIPPED = "skipped"  # its class names no Secret and it holds none: nothing asked
    # Not synced now: the volume is gone, its pod is not running (or cannot be read: retried),
    # or its status object is not written yet (synced once it is).
    NOT_SYNCED = "not_synced"


class FollowUps(Protocol):
    """Where volumes to sync again go (the re-sync loop, ``resync``)."""

    def volume_ready(self, target: str) -> None:
        """The status this volume's sync waited for is written: sync it now."""
        ...

    def retry_wanted(self) -> None:
        """A volume joined ``failing``: retry it after the backoff's delay."""
        ...


@dataclass(slots=True)
class PassCounts:
    """What one pass did with the volumes it looked at (``SyncOutcome``)."""

    synced: int = 0  # their Secrets checked against their files
    skipped: int = 0  # class names no Secret, volume holds none: nothing asked or written
    not_synced: int = 0  # gone meanwhile, pod not running, or status not written yet
    class_unavailable: int = 0  # class unreadable for now: its Secrets are kept as they are

    def add(self, outcome: SyncOutcome) -> None:
        if outcome is SyncOutcome.SYNCED:
            self.synced += 1
        elif outcome is SyncOutcome.SKIPPED:
            self.skipped += 1
        else:
            self.not_synced += 1
