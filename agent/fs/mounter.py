"""``VolumeMounter`` implementations: a real tmpfs (Linux) or a plain directory (Windows, demos).

Both act only on kubelet target paths below ``--kubelet-root-dir`` and reach them through
descriptors opened without following symlinks (``agent.fs.confined``): the tmpfs is mounted on
and detached from ``/proc/self/fd/<n>`` of such a descriptor, so no path is resolved twice.
Content is deleted only when it is the agent's own (``agent.fs.layout``); a target that is not
a mount and holds anything else is refused with InvalidArgument, and left as it is.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
from collections.abc import Sequence
from functools import cache

from agent import crashpoints
from agent.aio.threads import run_blocking
from agent.errors import ConfigError, InvalidRequest, MountError, MountPointError
from agent.fs.confined import KubeletVolumes, MadeTarget, open_child
from agent.fs.layout import Survey, refuse_foreign, remove_artefacts, survey
from agent.model import VolumeState
from agent.ports_volumes import VolumeMounter
from agent.targets import MOUNT_DIR, shown

MNT_DETACH = 2
CAP_SYS_ADMIN = 21  # capability bit number (linux/capability.h)
_O_PATH = getattr(os, "O_PATH", 0)
# getattr: these flags do not exist on Windows, where this module is imported but unused.
_PATH_FLAGS = (
    _O_PATH
    | getattr(os, "O_DIRECTORY", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
)
# mount(2) flags for the options we translate; anything else goes to the tmpfs data string.
_FLAGS = {
    "ro": 1,
    "nosuid": 2,
    "nodev": 4,
    "noexec": 8,
    "sync": 16,
    "noatime": 1024,
    "nodiratime": 2048,
    "relatime": 1 << 21,
}
# Stacked mounts on one target are detached one by one; this bounds a runaway loop.
_MAX_UNMOUNTS = 16
_DEAD_MOUNT = frozenset({errno.ENOTCONN, errno.EIO, errno.ESTALE, errno.EHOSTDOWN})


@cache
def _libc() -> ctypes.CDLL:
    # The process has libc loaded already: its global namespace resolves mount(2) and
    # umount2(2). ctypes.util.find_library("c") would run ``ldconfig -p`` in a subprocess
    # (2-4 ms, paid by the first publish).
    return ctypes.CDLL(None, use_errno=True)


def _fd_path(fd: int) -> bytes:
    return f"/proc/self/fd/{fd}".encode()


def _check(rc: int, what: str) -> None:
    if rc != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def _mount_id(fd: int) -> str | None:
    try:
        with open(f"/proc/self/fdinfo/{fd}", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("mnt_id:"):
                    return line.split()[1]
    except OSError:
        pass
    return None


def is_mount_root(parent_fd: int, fd: int) -> bool:
    """Whether the directory ``fd`` is the root of a mount on top of its parent ``parent_fd``."""
    # A tmpfs always has a device of its own: that answers without reading /proc.
    if os.fstat(fd).st_dev != os.fstat(parent_fd).st_dev:
        return True
    # Same device may still be a bind mount: mount ids tell (fdinfo, Linux >= 3.15).
    own, parent = _mount_id(fd), _mount_id(parent_fd)
    return own is not None and parent is not None and own != parent


def _detach_top(parent_fd: int) -> bool:
    """Detach the topmost mount at ``parent/mount``; False when nothing is mounted there.

    Lazily (MNT_DETACH), as kubelet's mounter does for a busy mount: the agent's files are
    already removed, and a reader holding one open keeps only its own view until it closes.
    """
    fd = os.open(MOUNT_DIR, _PATH_FLAGS, dir_fd=parent_fd)
    try:
        if not is_mount_root(parent_fd, fd):
            return False
        _check(_libc().umount2(_fd_path(fd), MNT_DETACH), "umount")
        return True
    finally:
        os.close(fd)


class _Target:
    """A target opened for one operation: its parent's and (when it exists) its own descriptor."""

    def __init__(self, volumes: KubeletVolumes, path: str) -> None:
        self.spec = volumes.parse(path)
        self.parent = volumes.open_volume_dir(self.spec)  # FileNotFoundError: nothing there
        self.fd: int | None = None
        self.unreadable = False
        try:
            self.reopen()
        except BaseException:
            os.close(self.parent)
            raise

    def reopen(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        try:
            self.fd = open_child(self.parent, MOUNT_DIR, shown(self.spec.path))
            self.unreadable = False
        except FileNotFoundError:
            pass
        except OSError as exc:
            # A dead mount (ENOTCONN, EIO, ...) cannot be opened; tmpfs detaches it, as upstream
            # unmounts a corrupt mount before mounting afresh.
            if exc.errno not in _DEAD_MOUNT:
                raise
            self.unreadable = True

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
        os.close(self.parent)


def _opened(volumes: KubeletVolumes, path: str) -> _Target | None:
    try:
        return _Target(volumes, path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise MountPointError(
            f"failed to check if target path {path} is mount point: {exc.strerror or exc}"
        ) from None


def _unprivileged_hint(exc: OSError) -> str:
    """``the agent runs as uid N`` when a permission error may come from not being root."""
    if exc.errno not in (errno.EACCES, errno.EPERM) or not hasattr(os, "geteuid"):
        return ""
    uid = os.geteuid()
    return f"the agent runs as uid {uid}" if uid != 0 else ""


def can_mount() -> bool:
    """Whether this process holds CAP_SYS_ADMIN, which mount(2) needs (in its own user
    namespace, so an ``unshare -Urm`` run counts); True when /proc does not say."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_SYS_ADMIN & 1)
    except (OSError, ValueError, IndexError):
        pass
    return True


def require_mount_capability() -> None:
    """ConfigError naming ``--mount-mode`` when tmpfs volumes cannot be mounted at all.

    Said at start-up rather than by every NodePublishVolume: an unprivileged run is either
    configured for directory volumes or fails before kubelet sends it anything.
    """
    if not can_mount():
        uid = os.geteuid() if hasattr(os, "geteuid") else -1
        raise ConfigError(
            f"--mount-mode: tmpfs volumes need CAP_SYS_ADMIN for mount(2), which this process "
            f"(uid {uid}) lacks; run the agent as root (or with CAP_SYS_ADMIN), or pass "
            "--mount-mode directory for an unprivileged run (secrets then sit on the node's disk)"
        )


class _Mounter:
    """What both mounters share. Subclasses say what counts as a volume at a target."""

    def __init__(self, volumes: KubeletVolumes) -> None:
        self.volumes = volumes

    def _mounted(self, opened: _Target) -> bool:
        raise NotImplementedError

    def _state(self, opened: _Target, found: Survey) -> VolumeState | None:
        raise NotImplementedError

    def _detach_all(self, opened: _Target) -> bool:
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
        opened = _opened(self.volumes, path)
        if opened is None:
            return False
        try:
            return self._mounted(opened)
        finally:
            opened.close()

    def inspect_blocking(self, path: str) -> VolumeState | None:
        """:meth:`inspect` in the calling worker thread (``ports_volumes.BlockingInspector``)."""
        opened = _opened(self.volumes, path)
        if opened is None:
            return None
        try:
            if not self._mounted(opened):
                if opened.fd is None:
                    return None
                found = survey(opened.fd)
                if found.foreign:
                    raise refuse_foreign(opened.spec, found)
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
        opened = _opened(self.volumes, path)
        if opened is None:
            return
        try:
            cleared = self._detach_all(opened)
            if opened.fd is None:
                return
            found = survey(opened.fd)
            if found.foreign:
                raise refuse_foreign(opened.spec, found)
            remove_artefacts(opened.fd, found.artefacts)
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
        _libc()  # bound at start, not on the first publish
        if size_bytes is not None and size_bytes <= 0:
            raise ConfigError(f"--tmpfs-size must be positive, got {size_bytes}")
        self._flags = 0
        data = [f"size={size_bytes}"] if size_bytes is not None else []
        for option in options:
            if option in _FLAGS:
                self._flags |= _FLAGS[option]
            else:
                data.append(option)
        # Upstream's tmpfs root is 1777; 0755 keeps other users on the node from adding files.
        if not any(item.startswith("mode=") for item in data):
            data.append("mode=0755")
        self.data = ",".join(data)

    def _mounted(self, opened: _Target) -> bool:
        if opened.unreadable:
            with contextlib.suppress(OSError):
                _detach_top(opened.parent)
            opened.reopen()
        return opened.fd is not None and is_mount_root(opened.parent, opened.fd)

    def _state(self, opened: _Target, found: Survey) -> VolumeState:
        return VolumeState(found.content, found.has_metadata)

    def mount_blocking(self, path: str) -> None:
        made = self._make_target(path)
        try:
            if not made.created:
                if is_mount_root(made.parent, made.fd):
                    return
                found = survey(made.fd)  # the node's disk below the mount: only ours may be there
                if found.foreign:
                    raise refuse_foreign(self.volumes.parse(path), found)
                remove_artefacts(made.fd, found.artefacts)
            options = self.data.encode()
            rc = _libc().mount(b"tmpfs", _fd_path(made.fd), b"tmpfs", self._flags, options)
            _check(rc, "mount")
        except OSError as exc:
            hint = " (mount(2) needs CAP_SYS_ADMIN: run as root, or --mount-mode directory)"
            hint = hint if exc.errno == errno.EPERM else ""
            raise MountError(
                f"failed to mount tmpfs at {path}: {exc.strerror or exc}{hint}"
            ) from None
        finally:
            made.close()
        crashpoints.reached("publish.mounted")

    def _detach_all(self, opened: _Target) -> bool:
        detached = False
        for _ in range(_MAX_UNMOUNTS):
            if not self._mounted(opened):
                break
            assert opened.fd is not None
            # Secrets first, so they are gone even if the mount stays busy. Whatever else is in
            # the mount (a legacy plugin's files) goes with the tmpfs, never one by one.
            with contextlib.suppress(OSError):
                remove_artefacts(opened.fd, survey(opened.fd).artefacts)
            crashpoints.reached("unpublish.cleared")
            os.close(opened.fd)
            opened.fd = None
            _detach_top(opened.parent)
            crashpoints.reached("unpublish.unmounted")
            opened.reopen()
            detached = True
        return detached


class DirectoryMounter(_Mounter):
    """No real mount: a directory on the node's disk (upstream's Windows behaviour).

    A non-empty directory counts as mounted, exactly as upstream decides on Windows.
    """

    def _mounted(self, opened: _Target) -> bool:
        if opened.fd is None:
            return False
        with os.scandir(opened.fd) as entries:
            return next(entries, None) is not None

    def _state(self, opened: _Target, found: Survey) -> VolumeState:
        if found.foreign and not found.has_metadata:
            raise refuse_foreign(opened.spec, found)
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
