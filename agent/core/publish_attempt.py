"""The state one publish builds up step by step, and the helpers its steps share."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TypeVar

from agent.model import ObjectVersion, PodIdentity, PublishRequest

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PublishOutcome:
    provider: str
    action: str  # mounted | already_mounted | rotated | unchanged | remount_failed
    files: int = 0
    remount: bool = False
    error_type: str = ""  # set for a masked remount failure


@dataclass(slots=True)
class Attempt:
    """What the steps of one publish learn, in order."""

    request: PublishRequest
    identity: PodIdentity
    spc_name: str
    provider: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    is_remount: bool = False
    # Set before the mount starts: from then on a failure or cancellation must undo it.
    mounted_here: bool = False
    current_versions: tuple[ObjectVersion, ...] = ()


async def run_to_completion(work: Awaitable[T]) -> T:
    """Finish file-system work even if the caller is cancelled, then let the cancellation through.

    The undo that follows a cancellation must not race a mount or a write still running in a
    worker thread: a write landing after the unmount would put secret bytes on the node's disk,
    a mount finishing after it would leave a tmpfs nobody knows about.
    """
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait({task})
        if not task.cancelled():
            task.exception()  # retrieved: the cancellation is what the caller reports
        raise
