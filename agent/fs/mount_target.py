"""A kubelet target opened for one mounter operation, without following symlinks.

Holds the descriptor of kubelet's volume directory (the parent) and, when it exists, of the
target itself; a dead mount (ENOTCONN, EIO, ...) cannot be opened and is marked ``unreadable``
for the tmpfs mounter to detach. agent/fs/mounter.py opens one per call.
"""

from __future__ import annotations

import errno
import os

from agent.errors import MountPointError
from agent.fs.confined import KubeletVolumes, open_child
from agent.targets import MOUNT_DIR, shown

_DEAD_MOUNT = frozenset({errno.ENOTCONN, errno.EIO, errno.ESTALE, errno.EHOSTDOWN})


class OpenedTarget:
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


def open_target(volumes: KubeletVolumes, path: str) -> OpenedTarget | None:
    """The target at ``path`` opened; None when nothing is there, MountPointError for any
    other failure to open it."""
    try:
        return OpenedTarget(volumes, path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise MountPointError(
            f"failed to check if target path {path} is mount point: {exc.strerror or exc}"
        ) from None
