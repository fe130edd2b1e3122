"""Kubelet's target paths for CSI inline volumes, and every rule a target path must pass.

Kubelet publishes an inline CSI volume at
``<kubelet root>/pods/<pod uid>/volumes/kubernetes.io~csi/<volume>/mount`` (kubelet's
``getTargetPath``; the root is kubelet's ``--root-dir``, ``/var/lib/kubelet`` by default and in
upstream's chart as ``kubeletRootDir``). The agent runs as root, so NodePublishVolume and
NodeUnpublishVolume act on nothing else: a path of another shape, or outside the root given
by ``--kubelet-root-dir``, is refused with InvalidArgument before anything touches the disk.

This module holds the string rules only (pure, shared by core, fs and the CLI); ``agent.fs``
applies the on-disk ones (no symlink at or below the root, no foreign content). A Windows
node's rules (drive letters, backslashes, case-insensitive names) are in
``agent.targets_windows``; :func:`make_target_rules` picks one set.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass

from agent.errors import ConfigError, InvalidRequest

DEFAULT_KUBELET_ROOT = "/var/lib/kubelet"
WINDOWS_KUBELET_ROOT = "C:\\var\\lib\\kubelet"  # kubelet's default --root-dir on Windows
PODS_DIR = "pods"
VOLUMES_DIR = "volumes"
CSI_PLUGIN_DIR = "kubernetes.io~csi"
MOUNT_DIR = "mount"
NAME_MAX = 255  # bytes in one path component (Linux NAME_MAX)
PATH_MAX = 4095  # bytes in a path, without the terminating NUL (Linux PATH_MAX)
_SHOWN_CHARS = 160
# Root-agnostic form for the CLI (group 1: pod UID, group 2: volume name); both separators,
# because the same client may name a Windows node's path.
_ANY_ROOT_RE = re.compile(
    r"[\\|/]+pods[\\|/]+(.+?)[\\|/]+volumes[\\|/]+kubernetes\.io~csi[\\|/]+(.+?)[\\|/]+mount$"
)


def shown(path: str, limit: int = _SHOWN_CHARS) -> str:
    """Quote a path (or a name) for a message; past ``limit`` characters it is cut so errors
    stay readable."""
    if len(path) > limit:
        return repr(path[:limit]) + "..."
    return repr(path)


@dataclass(frozen=True, slots=True)
class KubeletTarget:
    """A target path that passed the string rules, split into kubelet's parts."""

    path: str  # the canonical spelling: the key of the volume's lock and records
    root: str
    pod_uid: str
    volume: str
    separator: str = "/"

    @property
    def below_root(self) -> tuple[str, ...]:
        """Directory names from the kubelet root down to the target (``mount`` last)."""
        return (PODS_DIR, self.pod_uid, VOLUMES_DIR, CSI_PLUGIN_DIR, self.volume, MOUNT_DIR)

    @property
    def volume_dir(self) -> str:
        """The target's parent, which kubelet creates (with ``vol_data.json``) before publishing."""
        return self.path.rsplit(self.separator, 1)[0]


class TargetRules:
    """The string rules for one kubelet root. Every rejection is InvalidRequest naming the rule."""

    windows = False

    def __init__(self, kubelet_root: str = DEFAULT_KUBELET_ROOT) -> None:
        if not kubelet_root or not posixpath.isabs(kubelet_root) or "\0" in kubelet_root:
            raise ConfigError(f"--kubelet-root-dir: {kubelet_root!r} is not an absolute path")
        self.root = posixpath.normpath(kubelet_root)
        if self.root.startswith("//"):
            self.root = "/" + self.root.lstrip("/")

    def parse(self, path: str) -> KubeletTarget:
        """Check ``path`` and split it; raises InvalidRequest naming the first rule it breaks."""
        check_clean(path)
        prefix = self.root.rstrip("/") + "/"
        if not path.startswith(prefix):
            raise InvalidRequest(
                f"Target path must be below the kubelet root directory {self.root} "
                f"(--kubelet-root-dir): got {shown(path)}"
            )
        parts = path[len(prefix) :].split("/")
        if (
            len(parts) != 6
            or parts[0] != PODS_DIR
            or parts[2] != VOLUMES_DIR
            or parts[3] != CSI_PLUGIN_DIR
            or parts[5] != MOUNT_DIR
        ):
            raise InvalidRequest(
                f"Target path must have kubelet's shape {self.root}/pods/<pod uid>/volumes/"
                f"{CSI_PLUGIN_DIR}/<volume>/mount: got {shown(path)}"
            )
        for part in (parts[1], parts[4]):
            if len(os.fsencode(part)) > NAME_MAX:
                raise InvalidRequest(
                    f"Target path components must be at most {NAME_MAX} bytes (the kernel's "
                    f"NAME_MAX): {shown(part)} is {len(os.fsencode(part))} bytes"
                )
        return KubeletTarget(path=path, root=self.root, pod_uid=parts[1], volume=parts[4])

    def target_for(self, pod_uid: str, volume: str) -> str:
        """Kubelet's target path for ``volume`` of the pod ``pod_uid`` under this root."""
        return posixpath.join(
            self.root, PODS_DIR, pod_uid, VOLUMES_DIR, CSI_PLUGIN_DIR, volume, MOUNT_DIR
        )


def make_target_rules(kubelet_root: str, *, windows: bool) -> TargetRules:
    """The rules of a Linux or (``windows``) a Windows node for ``--kubelet-root-dir``."""
    if not windows:
        return TargetRules(kubelet_root)
    from agent.targets_windows import WindowsTargetRules

    return WindowsTargetRules(kubelet_root)


def check_clean(path: str) -> None:
    """Kubelet sends absolute, clean paths; anything else could mount somewhere unintended, or
    let two spellings of one directory (``/a//b``, ``/a/b``) escape the per-target lock."""
    if "\0" in path:
        raise InvalidRequest(f"Target path must not contain NUL: {shown(path)}")
    if not posixpath.isabs(path) or posixpath.normpath(path) != path or path.startswith("//"):
        raise InvalidRequest(f"Target path must be absolute and normalized: {shown(path)}")
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidRequest(f"Target path must be valid UTF-8: {shown(path)}") from None
    if size > PATH_MAX:
        raise InvalidRequest(
            f"Target path must be at most {PATH_MAX} bytes (the kernel's PATH_MAX): "
            f"it is {size} bytes"
        )


def pod_uid_and_volume(path: str) -> tuple[str, str] | None:
    """``(pod uid, volume name)`` from a kubelet-shaped path under any root, or None."""
    match = _ANY_ROOT_RE.search(path)
    if match is None:
        return None
    return match.group(1), match.group(2)
