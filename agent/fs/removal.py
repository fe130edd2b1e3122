"""Removing the agent's entries from a target: only what its layout explains.

A survey (``agent.fs.layout``) judges a target's top-level names; this module removes the ones
it calls the agent's. A file or a link among them is unlinked. A directory (a version
directory ``..<timestamp>``, or a payload name a legacy plugin wrote) is emptied of what the
atomic writer makes in one, regular files and directories, and removed once empty. Anything
else below it is kept, with the directories leading to it, and returned to the caller:

- the root of another mount (a node directory bind-mounted inside a volume): the walk never
  descends into it, so nothing on another file system is ever deleted (before, the removal of
  a version directory went on into such a mount and emptied it);
- a symlink, a FIFO, a socket or a device node: the writer never makes one;
- a directory nested deeper than any payload the agent would plausibly write
  (``MAX_DEPTH``), so a hostile tree cannot exhaust the walk.

A regular file someone put inside a version directory cannot be told from the writer's by its
kind; docs/crash-safety.md says where that matters (directory mode only). Every call is
relative to a directory descriptor, never through a symlink; blocking (worker threads).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat

from agent.fs.confined import DIR_FLAGS
from agent.fs.mount_syscalls import mount_id

# Directory levels below a removed name: payloads have a few; one recursion frame per level.
MAX_DEPTH = 256


def remove_artefacts(dir_fd: int, names: tuple[str, ...]) -> list[str]:
    """Remove the given entries of ``dir_fd`` (a survey's artefacts); return the paths kept
    below them, relative to ``dir_fd``. Raises the first OSError at the end, so one stuck entry
    does not keep the rest of the secrets on disk."""
    kept: list[str] = []
    first_error: OSError | None = None
    for name in names:
        try:
            kept.extend(remove_name(dir_fd, name))
        except OSError as exc:
            first_error = first_error or exc
    if first_error is not None:
        raise first_error
    return kept


def remove_name(dir_fd: int, name: str) -> list[str]:
    """Remove the entry ``name`` of ``dir_fd`` as the module docstring says; return the paths
    kept (relative to ``dir_fd``; none when ``name`` is gone). A missing entry is fine."""
    try:
        mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return []
    if not stat.S_ISDIR(mode):
        return _unlink(dir_fd, name, name)
    top = os.fstat(dir_fd).st_dev, mount_id(dir_fd)
    kept = _empty(dir_fd, name, name, top, 0)
    if not kept:
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(name, dir_fd=dir_fd)
    return kept


def _empty(
    parent_fd: int, name: str, shown: str, top: tuple[int, str | None], depth: int
) -> list[str]:
    """Empty the directory ``name`` of ``parent_fd`` of the writer's kinds of entry; return
    what was kept (``shown`` itself when it is another mount's root or too deep)."""
    try:
        fd = os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    except FileNotFoundError:
        return []
    try:
        if depth >= MAX_DEPTH or _another_mount(fd, top):
            return [shown]
        with os.scandir(fd) as entries:
            listed = [(e.name, e.stat(follow_symlinks=False).st_mode) for e in entries]
        kept: list[str] = []
        for child, mode in listed:
            path = f"{shown}/{child}"
            if stat.S_ISDIR(mode):
                below = _empty(fd, child, path, top, depth + 1)
                if below:
                    kept.extend(below)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        os.rmdir(child, dir_fd=fd)
            elif stat.S_ISREG(mode):
                kept.extend(_unlink(fd, child, path))
            else:
                kept.append(path)
        return kept
    finally:
        os.close(fd)


def _another_mount(fd: int, top: tuple[int, str | None]) -> bool:
    """Whether the open directory ``fd`` is on another mount than the walk's start: another
    device, or (a bind mount of the same file system) another mount id."""
    device, start_id = top
    if os.fstat(fd).st_dev != device:
        return True
    # None: /proc does not say (not mounted in this container); the device alone then tells.
    return start_id is not None and mount_id(fd) != start_id


def _unlink(dir_fd: int, name: str, shown: str) -> list[str]:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    except OSError as exc:
        if exc.errno == errno.EBUSY:  # a file bind-mounted there: another mount, kept
            return [shown]
        raise
    return []
