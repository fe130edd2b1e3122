"""mount(2) and umount2(2) through libc, on descriptors: the Linux half of the tmpfs mounter.

Every call names a target as ``/proc/self/fd/<n>`` of a descriptor opened without following
symlinks (agent/fs/confined.py), so no path is resolved twice. Also: whether a directory is a
mount's root and whether it is a tmpfs, detaching the topmost mount lazily, and whether this
process may mount at all (CAP_SYS_ADMIN), said at start-up. agent/fs/mounter.py uses them.
"""

from __future__ import annotations

import ctypes
import os
from functools import cache

from agent.errors import ConfigError
from agent.targets import MOUNT_DIR

MNT_DETACH = 2
CAP_SYS_ADMIN = 21  # capability bit number (linux/capability.h)
TMPFS_MAGIC = 0x01021994  # statfs(2) f_type of a tmpfs (linux/magic.h)
# struct statfs is 120 bytes on 64-bit Linux (84 on 32-bit); f_type, a C long, comes first.
_STATFS_BYTES = 256
_O_PATH = getattr(os, "O_PATH", 0)
# getattr: these flags do not exist on Windows, where this module is imported but unused.
_PATH_FLAGS = (
    _O_PATH
    | getattr(os, "O_DIRECTORY", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
)
# mount(2) flags for the options we translate; anything else goes to the tmpfs data string.
MOUNT_FLAGS = {
    "ro": 1,
    "nosuid": 2,
    "nodev": 4,
    "noexec": 8,
    "sync": 16,
    "noatime": 1024,
    "nodiratime": 2048,
    "relatime": 1 << 21,
}


@cache
def libc() -> ctypes.CDLL:
    # The process has libc loaded already: its global namespace resolves mount(2) and
    # umount2(2). ctypes.util.find_library("c") would run ``ldconfig -p`` in a subprocess
    # (2-4 ms, paid by the first publish).
    return ctypes.CDLL(None, use_errno=True)


def fd_path(fd: int) -> bytes:
    return f"/proc/self/fd/{fd}".encode()


def check(rc: int, what: str) -> None:
    if rc != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def mount_id(fd: int) -> str | None:
    """The id of the mount the open ``fd`` is on (/proc/self/fdinfo, Linux >= 3.15); None when
    /proc does not say."""
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
    own, parent = mount_id(fd), mount_id(parent_fd)
    return own is not None and parent is not None and own != parent


def is_tmpfs(fd: int) -> bool:
    """Whether the file system of the open directory ``fd`` is a tmpfs (fstatfs(2))."""
    buffer = ctypes.create_string_buffer(_STATFS_BYTES)
    check(libc().fstatfs(fd, buffer), "fstatfs")
    return ctypes.c_long.from_buffer(buffer).value == TMPFS_MAGIC


def detach_top(parent_fd: int) -> bool:
    """Detach the topmost mount at ``parent/mount``; False when nothing is mounted there.

    Lazily (MNT_DETACH), as kubelet's mounter does for a busy mount: the agent's files are
    already removed, and a reader holding one open keeps only its own view until it closes.
    """
    fd = os.open(MOUNT_DIR, _PATH_FLAGS, dir_fd=parent_fd)
    try:
        if not is_mount_root(parent_fd, fd):
            return False
        check(libc().umount2(fd_path(fd), MNT_DETACH), "umount")
        return True
    finally:
        os.close(fd)


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
