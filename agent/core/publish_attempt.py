"""The state one publish builds up step by step, and what it returns."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.model import MountResult, PodIdentity, PublishRequest, SecretProviderClass


@dataclass(frozen=True, slots=True)
class PublishOutcome:
    provider: str
    action: str  # mounted | already_mounted | adopted | rotated | unchanged | remount_failed
    files: int = 0
    remount: bool = False
    rotated: bool = False  # a remount changed the visible files (even if a later step failed)
    error_type: str = ""  # set for a masked remount failure
    error: str = ""
    notify_owner: bool = False  # the masked failure is one the pod's owner can fix


@dataclass(frozen=True, slots=True)
class Prefetched:
    """The provider's answer (``result``, or the ``error`` it raised) for ``spc``, asked before
    the mount-point check (``FirstPublish._ask_then_store``)."""

    spc: SecretProviderClass
    result: MountResult | None = None
    error: Exception | None = None


@dataclass(slots=True)
class Attempt:
    """What the steps of one publish learn, in order."""

    request: PublishRequest
    identity: PodIdentity
    spc_name: str
    # The pod's fsGroup (``publish_request.mount_group_of``): the group of the written files.
    mount_group: int | None = None
    provider: str = ""
    spc: SecretProviderClass | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    is_remount: bool = False
    # A complete volume without the agent's metadata, refetched to be recorded (a remount).
    adopting: bool = False
    # Set before the mount starts: from then on a failure or cancellation must undo it.
    mounted_here: bool = False
    files_changed: bool = False
    # Set before the status is written: only then may an undo release it.
    status_written: bool = False
    # The class source's re-read done in the mount-point check's hop (``publish_check``), for the
    # lookup after it, or (a first publish's hop) to be installed.
    class_read: object | None = None
    # The provider's answer from before the check: used once, if the class is still ``spc``.
    prefetched: Prefetched | None = None
    # A first publish's hop runs the mount-point check (``FirstPublish._still_first``): until
    # the check passed (``mounted_here``), a failure or a cancellation is the check's.
    first_check: bool = False
