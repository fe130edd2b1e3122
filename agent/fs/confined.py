"""Open kubelet volume directories one component at a time, never through a symlink.

Every directory from the kubelet root down to a target is opened with ``O_NOFOLLOW`` relative
to its parent's descriptor (openat), so a symlink planted at or above a target (``pods/<uid>``
pointing at ``/etc``, a ``mount`` that links elsewhere) is refused instead of followed, and no
component can be swapped between a check and the use of the path. The root itself may be a
symlink (some distributions link ``/var/lib/kubelet`` elsewhere); only what is below it is
confined. Refusals are InvalidRequest naming the rule (``agent.targets`` holds the string rules).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass

from agent.errors import InvalidRequest
from agent.fs.layout import refuse_not_tmpfs
from agent.fs.mount_syscalls import is_tmpfs
from agent.targets import (
    CSI_PLUGIN_DIR,
    PODS_DIR,
    VOLUMES_DIR,
    KubeletTarget,
    TargetRules,
    shown,
)

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# getattr: Windows has neither flag; this module is imported there but never used.
DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | _CLOEXEC
TARGET_DIR_MODE = 0o750  # upstream's mode for the target directory it creates


def open_child(dir_fd: int, name: str, shown_path: str) -> int:
    """Open the directory ``name`` below ``dir_fd`` without following a symlink.

    Raises FileNotFoundError when it is missing, InvalidRequest when it is a symlink or not a
    directory, and OSError for anything else.
    """
    try:
        return os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    except NotADirectoryError:
        pass  # O_NOFOLLOW | O_DIRECTORY reports a symlink as ENOTDIR too: tell them apart
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
    mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    if stat.S_ISLNK(mode):
        raise InvalidRequest(f"Target path must not pass through a symlink: {shown_path} is one")
    raise InvalidRequest(f"Target path must be a directory: {shown_path} is not")


@dataclass(frozen=True, slots=True)
class MadeTarget:
    """Descriptors of a target and its parent; ``created`` when the target was just made (then
    it is certainly empty and no mount)."""

    parent: int
    fd: int
    created: bool

    def close(self) -> None:
        os.close(self.fd)
        os.close(self.parent)


class KubeletVolumes:
    """Descriptors of kubelet volume directories below one root (``--kubelet-root-dir``).

    ``tmpfs_only`` (tmpfs mode): :meth:`open_target_path`, which the writer, the metadata store
    and the file reader open a volume with, refuses a target that is no tmpfs, so secrets are
    never written onto the node's disk, whatever was mounted over a volume (or unmounted from
    it) since the agent mounted it.
    """

    def __init__(self, rules: TargetRules, *, tmpfs_only: bool = False) -> None:
        self.rules = rules
        self.tmpfs_only = tmpfs_only

    @property
    def root(self) -> str:
        return self.rules.root

    def parse(self, target: str) -> KubeletTarget:
        return self.rules.parse(target)

    def open_volume_dir(self, target: KubeletTarget) -> int:
        """The target's parent (the directory kubelet makes); FileNotFoundError if missing."""
        return self._walk(target.below_root[:-1])

    def open_target(self, target: KubeletTarget) -> int:
        """The target directory itself; FileNotFoundError when it (or a parent) is missing."""
        return self._walk(target.below_root)

    def open_target_path(self, target: str) -> int:
        """:meth:`open_target` for an unparsed path (parsing applies the string rules), to read
        or write the volume's files: with ``tmpfs_only``, InvalidRequest when it is no tmpfs."""
        fd = self.open_target(self.parse(target))
        try:
            if self.tmpfs_only and not is_tmpfs(fd):
                raise refuse_not_tmpfs(target)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _walk(self, names: tuple[str, ...]) -> int:
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)
        path = self.root
        try:
            for name in names:
                path = f"{path}/{name}"
                child = open_child(fd, name, shown(path))
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    def make_target(self, target: KubeletTarget) -> MadeTarget:
        """Create the target directory (0750) in its existing parent, if missing, and open both.

        Only the last component is ever created: kubelet makes the parent, and a path that fails
        a rule must leave no directories behind. Raises InvalidRequest when the parent is missing.
        """
        try:
            parent = self.open_volume_dir(target)
        except FileNotFoundError:
            raise InvalidRequest(
                f"Target path's volume directory {shown(target.volume_dir)} must exist "
                "(kubelet creates it before NodePublishVolume)"
            ) from None
        try:
            created = True
            try:
                os.mkdir(target.below_root[-1], TARGET_DIR_MODE, dir_fd=parent)
            except FileExistsError:
                created = False
            fd = open_child(parent, target.below_root[-1], shown(target.path))
            if created:
                with contextlib.suppress(OSError):
                    os.fchmod(fd, TARGET_DIR_MODE)  # mkdir honours the umask
        except BaseException:
            os.close(parent)
            raise
        return MadeTarget(parent, fd, created)

    def candidate_targets(self) -> Iterator[str]:
        """Every existing ``<root>/pods/*/volumes/kubernetes.io~csi/*/mount`` directory.

        Entries that are symlinks or unreadable are skipped (never followed).
        """
        for uid in _subdirectories(self._try_walk((PODS_DIR,))):
            csi_fd = self._try_walk((PODS_DIR, uid, VOLUMES_DIR, CSI_PLUGIN_DIR))
            for volume in _subdirectories(csi_fd):
                path = self.rules.target_for(uid, volume)
                with contextlib.suppress(OSError, InvalidRequest):
                    os.close(self.open_target(self.parse(path)))
                    yield path

    def _try_walk(self, names: tuple[str, ...]) -> int | None:
        try:
            return self._walk(names)
        except (OSError, InvalidRequest):
            return None


def _subdirectories(fd: int | None) -> list[str]:
    """Names of the real directories in ``fd`` (closed here); none when ``fd`` is None."""
    if fd is None:
        return []
    try:
        with os.scandir(fd) as entries:
            return sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))
    except OSError:
        return []
    finally:
        os.close(fd)
