"""Open a path beneath a directory, following symlinks only while they stay beneath it.

Checking a path with realpath() and then opening it by name leaves a window: whoever may write
inside a trusted directory can swap a component for a symlink to, say, another pod's volume in
between. Here the check *is* the open. Each component is opened relative to its parent's
descriptor with O_NOFOLLOW, and symlinks are resolved here, one component at a time, refusing
any that would lead above the root. The links of a ConfigMap volume (ca.crt -> ..data/ca.crt,
..data -> ..2024_01_01) stay inside and keep working.

openat2(RESOLVE_BENEATH) does this in the kernel, but Python has no binding for it, and a
ctypes call would still need a fallback for older kernels: this walk is that fallback, so it is
the only code path.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import PurePosixPath

_MAX_LINKS = 40  # the kernel's own limit on symlinks in one lookup
# getattr: Windows has none of these flags; there the module imports, and open_beneath fails
# (descriptors of directories do not exist there), so trusted files are Linux-only.
_NOFOLLOW, _CLOEXEC = getattr(os, "O_NOFOLLOW", 0), getattr(os, "O_CLOEXEC", 0)
_DIRECTORY = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW | _CLOEXEC
# O_NONBLOCK: a FIFO where a certificate is expected must not hang the worker thread.
_LAST = os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | _CLOEXEC


class Escape(Exception):
    """The path, or a symlink on it, leads outside the root."""


class NotRegularFile(OSError):
    """A directory, FIFO, device or socket where a file's bytes were expected."""


def open_beneath(root: str, relative: str) -> int:
    """A read-only descriptor, which the caller closes, for ``relative`` beneath the directory
    ``root`` (an absolute real path, trusted as it is). Raise Escape if resolving it would leave
    ``root``, by ``..`` or by a symlink; otherwise OSError as open(2) would."""
    stack = [os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)]
    pending = _parts(relative)  # the next component last
    links = 0
    try:
        while pending:
            name = pending.pop()
            if name == "..":
                if len(stack) == 1:
                    raise Escape
                os.close(stack.pop())
                continue
            try:
                fd = os.open(name, _DIRECTORY if pending else _LAST, dir_fd=stack[-1])
            except OSError as err:
                target = _link_target(name, stack[-1], err)
                links += 1
                if links > _MAX_LINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP)) from None
                if target.startswith("/"):
                    target = _inside(root, target)
                    while len(stack) > 1:
                        os.close(stack.pop())
                pending.extend(_parts(target))
                continue
            if not pending:
                return fd
            stack.append(fd)
        return os.open(".", _LAST, dir_fd=stack[-1])  # the root itself, or "sub/.."
    finally:
        for fd in stack:
            os.close(fd)


def read_beneath(root: str, relative: str, limit: int) -> bytes:
    """The bytes of the regular file ``relative`` beneath ``root``, at most ``limit`` of them."""
    fd = open_beneath(root, relative)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegularFile(errno.EINVAL, "not a regular file")
        data = b""
        while len(data) <= limit and (chunk := os.read(fd, limit + 1 - len(data))):
            data += chunk
    finally:
        os.close(fd)
    if len(data) > limit:
        raise OSError(
            errno.EFBIG,
            f"larger than {limit} bytes, the fixed limit for a file read from --trusted-file-dirs",
        )
    return data


def list_beneath(root: str, relative: str) -> list[str]:
    """The names in the directory ``relative`` beneath ``root``."""
    fd = open_beneath(root, relative)
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        return os.listdir(fd)
    finally:
        os.close(fd)


def _parts(path: str) -> list[str]:
    """The components of ``path`` in reverse, to pop from the end; "" and "." change nothing."""
    return [part for part in reversed(path.split("/")) if part not in ("", ".")]


def _link_target(name: str, dir_fd: int, err: OSError) -> str:
    """Where the symlink ``name`` leads, if it is one: O_NOFOLLOW failed on it with ELOOP (or
    ENOTDIR, with O_DIRECTORY). Otherwise re-raise the open's own error."""
    if err.errno in (errno.ELOOP, errno.ENOTDIR):
        try:
            return os.readlink(name, dir_fd=dir_fd)
        except OSError:
            pass  # not a symlink after all (or gone): the open's error is the one to report
    raise err


def _inside(root: str, target: str) -> str:
    """An absolute symlink target as a path relative to ``root``, if it names a place there.
    Its ".." components are resolved by the walk, which refuses them above the root."""
    path = PurePosixPath(target)
    if not path.is_relative_to(root):
        raise Escape
    return str(path.relative_to(root))
