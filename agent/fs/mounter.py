"""``VolumeMounter`` implementations: a real tmpfs (Linux) or a plain directory (Windows, demos).

Both act only on kubelet target paths below ``--kubelet-root-dir`` and reach them through
descriptors opened without following symlinks (``agent.fs.confined``): the tmpfs is mounted on
and detached from ``/proc/self/fd/<n>`` of such a descriptor, so no path is resolved twice.
Content is deleted only when it is the agent's own (``agent.fs.layout``, ``agent.fs.removal``);
a target that is not a mount and holds anything else is refused with InvalidArgument, and left
as it is. In tmpfs mode the agent's own is what lies in its tmpfs alone: another file system
mounted at a target is never written into nor adopted, and an unpublish detaches it with its
content untouched; the node's disk below a mount holds nothing of the agent's. The
syscalls are agent/fs/mount_syscalls.py's, the opened target agent/fs/mount_target.py's.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Sequence

from agent import crashpoints
from agent.aio.threads import run_blocking
from agent.errors import ConfigError, InvalidRequest, MountError, MountPointError
from agent.fs.confined import KubeletVolumes, MadeTarget
from agent.fs.layout import Survey, refuse_foreign, refuse_other_file_system, survey
from agent.fs.mount_syscalls import (
    MOUNT_FLAGS,
    check,
    detach_top,
    fd_path,
    is_mount_root,
    is_tmpfs,
    libc,
)
from agent.fs.mount_target import OpenedTarget, open_target
from agent.fs.removal import remove_artefacts
from agent.model import VolumeState
from agent.ports_volumes import VolumeMounter
from agent.targets import MOUNT_DIR

# Stacked mounts on one target are detached one by one; this bounds a runaway loop.
_MAX_UNMOUNTS = 16


def _unprivileged_hint(exc: OSError) -> str:
    """``the agent runs as uid N`` when a permission error may come from not being root."""
    if exc.errno not in (errno.EACCES, errno.EPERM) or not hasattr(os, "geteuid"):
        return ""
    uid = os.geteuid()
    return f"the agent runs as uid {uid}" if uid != 0 else ""


class _Mounter:
    """What both mounters share. Subclasses say what counts as a volume at a target."""

    def __init__(self, volumes: KubeletVolumes) -> None:
        self.volumes = volumes

    def _mounted(self, opened: OpenedTarget) -> bool:
        raise NotImplementedError

    def _state(self, opened: OpenedTarget, found: Survey) -> VolumeState | None:
        raise NotImplementedError

    def _unmounted(self, fd: int) -> Survey:
        """What a target that is no mount holds (``fd``), as the mode judges it."""
        return survey(fd)

    def _detach_all(self, opened: OpenedTarget) -> bool:
        """Remove the agent's files from each mount at the target and detach it; True when
        there was one (tmpfs only)."""
        return False

    def mount_blocking(self, path: str) -> None:
        raise NotImplementedError

    def _make_target(self, path: str) -> MadeTarget:
        """The target directory, created in kubelet's volume directory if missing, and open."""
        spec = self.volumes.parse(path)
        try:
            made = self.volumes.make_target(spec)
        except OSError as exc:
            who = _unprivileged_hint(exc)
            hint = (
                f" ({who}: an unprivileged agent needs the pods' volume directories under "
                "--kubelet-root-dir writable by its user)"
                if who
                else ""
            )
            raise MountError(f"failed to create {path}: {exc.strerror or exc}{hint}") from None
        crashpoints.reached("publish.target_created")
        return made

    async def is_mounted(self, target: str) -> bool:
        return await run_blocking(self._is_mounted_sync, target)

    async def mount(self, target: str) -> None:
        await run_blocking(self.mount_blocking, target)

    async def inspect(self, target: str) -> VolumeState | None:
        return await run_blocking(self.inspect_blocking, target)

    async def unmount(self, target: str) -> None:
        await run_blocking(self._unmount_sync, target)

    async def discover(self) -> list[str]:
        return await run_blocking(self._discover_sync)

    def _is_mounted_sync(self, path: str) -> bool:
        opened = open_target(self.volumes, path)
        if opened is None:
            return False
        try:
            return self._mounted(opened)
        finally:
            opened.close()

    def inspect_blocking(self, path: str) -> VolumeState | None:
        """:meth:`inspect` in the calling worker thread (``ports_volumes.BlockingInspector``)."""
        opened = open_target(self.volumes, path)
        if opened is None:
            return None
        try:
            if not self._mounted(opened):
                if opened.fd is None:
                    return None
                found = self._unmounted(opened.fd)
                if found.foreign:
                    raise refuse_foreign(opened.spec, found.foreign)
                return None  # nothing, or only the agent's leftovers: publish afresh
            assert opened.fd is not None
            return self._state(opened, survey(opened.fd))
        except OSError as exc:
            raise MountPointError(
                f"failed to read target path {path}: {exc.strerror or exc}"
            ) from None
        finally:
            opened.close()

    def _unmount_sync(self, path: str) -> None:
        opened = open_target(self.volumes, path)
        if opened is None:
            return
        try:
            cleared = self._detach_all(opened)
            if opened.fd is None:
                return
            found = self._unmounted(opened.fd)
            if found.foreign:
                raise refuse_foreign(opened.spec, found.foreign)
            kept = remove_artefacts(opened.fd, found.artefacts)
            if kept:  # below the agent's names: another mount, or what its writer never makes
                raise refuse_foreign(opened.spec, kept)
            if not cleared:
                crashpoints.reached("unpublish.cleared")
            os.rmdir(MOUNT_DIR, dir_fd=opened.parent)
            crashpoints.reached("unpublish.removed")
        except FileNotFoundError:
            return
        except OSError as exc:
            raise MountError(f"failed to unmount {path}: {exc.strerror or exc}") from None
        finally:
            opened.close()

    def _discover_sync(self) -> list[str]:
        found = []
        for path in self.volumes.candidate_targets():
            with contextlib.suppress(OSError, InvalidRequest, MountPointError):
                if self._is_mounted_sync(path):
                    found.append(path)
        return found


class TmpfsMounter(_Mounter):
    """Mounts a tmpfs per volume through mount(2); needs CAP_SYS_ADMIN."""

    def __init__(
        self,
        volumes: KubeletVolumes,
        size_bytes: int | None = None,
        options: Sequence[str] = ("nosuid", "nodev", "noexec"),
    ) -> None:
        super().__init__(volumes)
        libc()  # bound at start, not on the first publish
        if size_bytes is not None and size_bytes <= 0:
            raise ConfigError(f"--tmpfs-size must be positive, got {size_bytes}")
        self._flags = 0
        data = [f"size={size_bytes}"] if size_bytes is not None else []
        for option in options:
            if option in MOUNT_FLAGS:
                self._flags |= MOUNT_FLAGS[option]
            else:
                data.append(option)
        # Upstream's tmpfs root is 1777; 0755 keeps other users on the node from adding files.
        if not any(item.startswith("mode=") for item in data):
            data.append("mode=0755")
        self.data = ",".join(data)

    def _mounted(self, opened: OpenedTarget) -> bool:
        if opened.unreadable:
            with contextlib.suppress(OSError):
                detach_top(opened.parent)
            opened.reopen()
        return opened.fd is not None and is_mount_root(opened.parent, opened.fd)

    def _state(self, opened: OpenedTarget, found: Survey) -> VolumeState:
        # Whatever is in another file system's mount (the node's disk through a bind mount),
        # it is not a volume the agent may complete, refetch into or call published.
        assert opened.fd is not None
        if not is_tmpfs(opened.fd):
            raise refuse_other_file_system(opened.spec)
        return VolumeState(found.content, found.has_metadata)

    def _unmounted(self, fd: int) -> Survey:
        # The agent reads and writes a volume only in its tmpfs (KubeletVolumes refuses any
        # other file system), so nothing on the node's disk below is its own: even the writer's
        # layout there (copied, say) is someone else's, never deleted or mounted over.
        return survey(fd).disowned()

    def mount_blocking(self, path: str) -> None:
        made = self._make_target(path)
        try:
            if not made.created:
                if is_mount_root(made.parent, made.fd):
                    if not is_tmpfs(made.fd):  # mounted since the inspection
                        raise refuse_other_file_system(self.volumes.parse(path))
                    return
                found = self._unmounted(made.fd)  # the node's disk: an empty directory at most
                if found.foreign:
                    raise refuse_foreign(self.volumes.parse(path), found.foreign)
            options = self.data.encode()
            rc = libc().mount(b"tmpfs", fd_path(made.fd), b"tmpfs", self._flags, options)
            check(rc, "mount")
        except OSError as exc:
            hint = " (mount(2) needs CAP_SYS_ADMIN: run as root, or --mount-mode directory)"
            hint = hint if exc.errno == errno.EPERM else ""
            raise MountError(
                f"failed to mount tmpfs at {path}: {exc.strerror or exc}{hint}"
            ) from None
        finally:
            made.close()
        crashpoints.reached("publish.mounted")

    def _detach_all(self, opened: OpenedTarget) -> bool:
        detached = False
        for _ in range(_MAX_UNMOUNTS):
            if not self._mounted(opened):
                break
            assert opened.fd is not None
            # The agent's tmpfs: secrets first, so they are gone even if the mount stays busy.
            # Whatever else is in it (a legacy plugin's files, a mount inside it) goes with the
            # tmpfs, never one by one. Another file system mounted here (the node's disk through
            # a bind mount) is not the agent's: detached as upstream does, its content untouched.
            if is_tmpfs(opened.fd):
                with contextlib.suppress(OSError):
                    remove_artefacts(opened.fd, survey(opened.fd).artefacts)
            crashpoints.reached("unpublish.cleared")
            os.close(opened.fd)
            opened.fd = None
            detach_top(opened.parent)
            crashpoints.reached("unpublish.unmounted")
            opened.reopen()
            detached = True
        return detached


class DirectoryMounter(_Mounter):
    """No real mount: a directory on the node's disk (upstream's Windows behaviour).

    A non-empty directory counts as mounted, exactly as upstream decides on Windows.
    """

    def _mounted(self, opened: OpenedTarget) -> bool:
        if opened.fd is None:
            return False
        with os.scandir(opened.fd) as entries:
            return next(entries, None) is not None

    def _state(self, opened: OpenedTarget, found: Survey) -> VolumeState:
        if found.foreign and not found.has_metadata:
            raise refuse_foreign(opened.spec, found.foreign)
        return VolumeState(found.content, found.has_metadata)

    def mount_blocking(self, path: str) -> None:
        self._make_target(path).close()
        crashpoints.reached("publish.mounted")


def make_mounter(
    mode: str, volumes: KubeletVolumes, size_bytes: int | None = None
) -> VolumeMounter:
    """``"tmpfs"`` or ``"directory"``; anything else is a ConfigError."""
    if mode == "tmpfs":
        return TmpfsMounter(volumes, size_bytes)
    if mode == "directory":
        return DirectoryMounter(volumes)
    raise ConfigError(f"unknown mount mode {mode!r}: expected 'tmpfs' or 'directory'")
