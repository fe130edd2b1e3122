"""Kubelet volume directories of a Windows node, reached by path (no directory descriptors).

The counterpart of ``agent.fs.confined`` for Windows: every component from the kubelet root
down to a target is ``lstat``-ed and must be a plain directory, never a symlink or a reparse
point (``agent.fs.windows.entries``), before the path is used. Only the last component, the
target itself, is ever created (kubelet makes its parent). The root itself may be a link, as
on Linux, and so may ``<root>\\pods``: in the agent's Windows container that is the mount point
of a hostPath volume, which a container runtime may present as a reparse point (a directory
only administrators can replace on the node).

``local_root`` is where the kubelet root lives on *this* machine: the root itself on a node;
another directory when tests on Linux emulate ``C:\\var\\lib\\kubelet``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from agent.errors import InvalidRequest
from agent.fs.windows.entries import is_link_like, is_plain_dir
from agent.targets import CSI_PLUGIN_DIR, PODS_DIR, VOLUMES_DIR, KubeletTarget, TargetRules, shown

TARGET_DIR_MODE = 0o750


class PathVolumes:
    """Checked local paths of kubelet volume directories below one root."""

    def __init__(self, rules: TargetRules, local_root: str | None = None) -> None:
        self.rules = rules
        self.local_root = local_root if local_root is not None else rules.root

    def parse(self, target: str) -> KubeletTarget:
        return self.rules.parse(target)

    def local(self, names: tuple[str, ...]) -> str:
        return os.path.join(self.local_root, *names)

    def checked(self, names: tuple[str, ...], shown_path: str) -> str:
        """The local path of ``root/names...`` once each component is a plain directory.

        FileNotFoundError when one is missing; InvalidRequest naming a link or a non-directory.
        """
        path = self.local_root
        for depth, name in enumerate(names):
            path = os.path.join(path, name)
            # The pods dir may be the container's mount point (module text): followed.
            info = os.stat(path) if depth == 0 and name == PODS_DIR else os.lstat(path)
            if is_link_like(info):
                raise InvalidRequest(
                    f"Target path must not pass through a symlink or junction: "
                    f"{shown_path} has one at {name!r}"
                )
            if not is_plain_dir(info):
                raise InvalidRequest(f"Target path must be a directory: {shown_path} is not")
        return path

    def volume_dir(self, target: KubeletTarget) -> str:
        return self.checked(target.below_root[:-1], shown(target.path))

    def target_dir(self, target: KubeletTarget) -> str:
        return self.checked(target.below_root, shown(target.path))

    def target_dir_of(self, path: str) -> str:
        return self.target_dir(self.parse(path))

    def make_target(self, target: KubeletTarget) -> tuple[str, bool]:
        """Create the target (0750 where modes apply) in its existing parent; ``(path, created)``.

        InvalidRequest when the parent is missing (kubelet creates it before publishing).
        """
        try:
            parent = self.volume_dir(target)
        except FileNotFoundError:
            raise InvalidRequest(
                f"Target path's volume directory {shown(target.volume_dir)} must exist "
                "(kubelet creates it before NodePublishVolume)"
            ) from None
        created = True
        try:
            os.mkdir(os.path.join(parent, target.below_root[-1]), TARGET_DIR_MODE)
        except FileExistsError:
            created = False
        return self.target_dir(target), created

    def candidate_targets(self) -> Iterator[str]:
        """Every existing ``pods/*/volumes/kubernetes.io~csi/*/mount`` below the root, by its
        canonical target path; links and unreadable entries are skipped, never followed."""
        for uid in _subdirectories(self.local((PODS_DIR,))):
            csi_dir = self.local((PODS_DIR, uid, VOLUMES_DIR, CSI_PLUGIN_DIR))
            for volume in _subdirectories(csi_dir):
                with contextlib.suppress(OSError, InvalidRequest):
                    target = self.parse(self.rules.target_for(uid, volume))
                    self.target_dir(target)
                    yield target.path


def _subdirectories(path: str) -> list[str]:
    try:
        with os.scandir(path) as entries:
            return sorted(
                entry.name for entry in entries if is_plain_dir(entry.stat(follow_symlinks=False))
            )
    except OSError:
        return []
