"""Kubelet/upstream AtomicWriter semantics: files live in a timestamped directory and appear
through ``..data`` and one top-level symlink per first path component::

    <target>/..data -> ..2026_04_30_12_00_00.abc123      (swapped atomically by rename)
    <target>/..2026_04_30_12_00_00.abc123/<files>         (real directory, 0755)
    <target>/<name> -> ..data/<name>

Names starting with ``..`` are reserved (``agent.fs.layout``). Every operation is relative to a
descriptor of the target directory, so nothing below it is reached through a symlink. Callers
must serialise writes per target (as upstream). What happens inside one timestamped directory
(comparing, creating, writing the files) is agent/fs/payload_dir.py's.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Sequence

from agent import crashpoints
from agent.aio.threads import run_blocking
from agent.errors import FileWriteError
from agent.fs import files as _files
from agent.fs.capacity import VolumeCapacity
from agent.fs.confined import KubeletVolumes
from agent.fs.layout import DATA_DIR, DATA_TMP, RESERVED_PREFIX, is_ts_dir_name
from agent.fs.paths import DEFAULT_MAX_TOTAL_BYTES, first_component, validate_payload
from agent.fs.payload_dir import NO_SPACE, differs, new_ts_dir, paths_to_remove, write_payload
from agent.fs.removal import remove_name
from agent.model import SecretFile

__all__ = ["AsyncPayloadWriter", "AtomicWriter"]


def _first_components(files: Sequence[SecretFile]) -> list[str]:
    return list(dict.fromkeys(first_component(f.path) for f in files))


# Kinds of the target's entries, from one listing (the file type ``getdents`` reports: no stat).
_LINK, _DIR, _OTHER = "link", "dir", "other"
Listing = dict[str, str]  # name -> kind


def _list(dir_fd: int) -> Listing:
    with os.scandir(dir_fd) as entries:
        return {
            e.name: _LINK if e.is_symlink() else _DIR if e.is_dir(follow_symlinks=False) else _OTHER
            for e in entries
        }


class AtomicWriter:
    """Synchronous writer for one target directory (which must already exist).

    ``dir_fd`` is an open descriptor of the target (the caller keeps ownership); without it the
    directory at ``target`` is opened (not through a final symlink) for each write.
    """

    def __init__(
        self,
        target: str,
        *,
        dir_fd: int | None = None,
        max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
        capacity: VolumeCapacity | None = None,
    ) -> None:
        self.target = target
        self._given_fd = dir_fd
        self._max_total_bytes = max_total_bytes
        self._capacity = capacity or VolumeCapacity()
        self._fd = -1

    def write(
        self, files: Sequence[SecretFile], *, uid: int | None = None, gid: int | None = None
    ) -> bool:
        """Project ``files`` atomically; return False when the volume already had this content.

        Raises PayloadError for an invalid payload, VolumeFull when the file system has no room
        (naming the flag that gives it more) and FileWriteError for other filesystem failures;
        in every case the previous content stays visible.
        """
        validate_payload(files, max_total_bytes=self._max_total_bytes)
        try:
            self._fd = self._given_fd if self._given_fd is not None else self._open()
            try:
                return self._write(files, uid, gid)
            finally:
                if self._given_fd is None:
                    os.close(self._fd)
                self._fd = -1
        except OSError as exc:
            if exc.errno in NO_SPACE:
                raise self._capacity.full(self.target, files) from None
            raise FileWriteError(
                f"failed to write files in {self.target}: {exc.strerror or exc}"
            ) from None

    def _open(self) -> int:
        try:
            return _files.open_dir(self.target)
        except FileNotFoundError:
            raise FileWriteError(f"target directory {self.target} does not exist") from None

    def _write(self, files: Sequence[SecretFile], uid: int | None, gid: int | None) -> bool:
        names = _first_components(files)
        # One listing of the target answers what a stat or readlink per name used to (a fresh
        # volume: ~40 failing lookups of 10 files); writes per target are serialised (above),
        # so it stays true while this write runs, apart from what the write itself changes.
        listing = _list(self._fd)
        self._remove_legacy_entries(names, listing)
        old = self._current_ts_dir(listing)
        # Half-written directories of an interrupted write are never visible: sweep them first,
        # so they do not take the room the new version needs (a full tmpfs).
        self._remove_stale_ts_dirs(old, listing)
        created: list[str] = []
        if (
            old is not None
            and not paths_to_remove(self._fd, files, old)
            and not differs(self._fd, files, old, uid, gid)
        ):
            # Content is current; only repair visible links (e.g. after a legacy cleanup).
            self._ensure_links(names, created, listing)
            return self._prune_links(names, _list(self._fd)) or bool(created)
        new, new_fd = new_ts_dir(self._fd, gid)
        try:
            write_payload(self.target, files, new_fd, uid, gid)
            crashpoints.reached("write.payload_written")
            self._ensure_links(names, created, listing)
            crashpoints.reached("write.links_made")
            self._swap(new, listing)
        except BaseException:
            self._rollback(new, created)
            raise
        crashpoints.reached("write.swapped")
        # Failures below are ignored: the new content is visible, the next write sweeps again.
        with contextlib.suppress(OSError):
            after = _list(self._fd)
            self._prune_links(names, after)
            self._remove_stale_ts_dirs(new, after)
        return True

    def _lstat(self, name: str) -> os.stat_result:
        return os.stat(name, dir_fd=self._fd, follow_symlinks=False)

    def _readlink(self, name: str) -> str:
        return os.readlink(name, dir_fd=self._fd)

    def _remove_legacy_entries(self, names: list[str], listing: Listing) -> None:
        """Upstream ``cleanupProviderFiles``: drop non-symlink entries an old provider wrote."""
        for name in names:
            if listing.get(name, _LINK) != _LINK:
                remove_name(self._fd, name)
                del listing[name]

    def _current_ts_dir(self, listing: Listing) -> str | None:
        """Name of the directory ``..data`` points to, if it is a sane one of ours."""
        if listing.get(DATA_DIR) != _LINK:
            return None  # missing, or a real directory (corrupt); the swap replaces it
        try:
            link = self._readlink(DATA_DIR)
        except OSError:
            return None
        # A planted ``..data -> ../../etc`` must never be compared against or deleted.
        if not is_ts_dir_name(link) or listing.get(link) != _DIR:
            return None
        return link

    def _ensure_links(self, names: list[str], created: list[str], listing: Listing) -> None:
        """Make every ``<name> -> ..data/<name>`` link exist; record (re)created names."""
        for name in names:
            want = f"{DATA_DIR}/{name}"
            if name in listing:
                with contextlib.suppress(OSError):  # gone meanwhile, or not a symlink
                    if self._readlink(name) == want:
                        continue
                # A link pointing anywhere else (or a stray entry) is never trusted: replace it.
                remove_name(self._fd, name)
            try:
                os.symlink(want, name, dir_fd=self._fd)
            except FileExistsError:  # not there when listed: never trusted either
                remove_name(self._fd, name)
                os.symlink(want, name, dir_fd=self._fd)
            created.append(name)

    def _swap(self, new: str, listing: Listing) -> None:
        # A crash between symlink and rename leaves ``..data_tmp`` behind; upstream would then
        # fail every later write with EEXIST.
        if DATA_TMP in listing:
            remove_name(self._fd, DATA_TMP)
        os.symlink(new, DATA_TMP, dir_fd=self._fd)
        if listing.get(DATA_DIR, _LINK) != _LINK:
            remove_name(self._fd, DATA_DIR)  # a real directory cannot be renamed over
        os.rename(DATA_TMP, DATA_DIR, src_dir_fd=self._fd, dst_dir_fd=self._fd)

    def _rollback(self, new: str, created: list[str]) -> None:
        for name in (DATA_TMP, new):
            with contextlib.suppress(OSError):
                remove_name(self._fd, name)
        for name in created:
            with contextlib.suppress(OSError):
                if stat.S_ISLNK(self._lstat(name).st_mode):
                    os.unlink(name, dir_fd=self._fd)

    def _prune_links(self, names: list[str], listing: Listing) -> bool:
        """Remove top-level ``x -> ..data/x`` links the payload no longer has.

        Scanning (rather than trusting upstream's diff of the old directory) also heals links
        left dangling by an earlier interrupted write. Failures are ignored: the new content is
        already visible, and the next write retries.
        """
        keep, pruned = set(names), False
        for name, kind in listing.items():
            if kind != _LINK or name in keep or name.startswith(RESERVED_PREFIX):
                continue
            with contextlib.suppress(OSError):
                if self._readlink(name) == f"{DATA_DIR}/{name}":
                    os.unlink(name, dir_fd=self._fd)
                    pruned = True
        return pruned

    def _remove_stale_ts_dirs(self, keep: str | None, listing: Listing) -> None:
        # A failure here must not fail the write (the visible content is fine either way), and
        # whatever is left (also from an earlier crash) is swept by the next write.
        for name, kind in listing.items():
            if kind == _DIR and name != keep and is_ts_dir_name(name):
                with contextlib.suppress(OSError):
                    remove_name(self._fd, name)


class AsyncPayloadWriter:
    """``PayloadWriter`` port: opens the target below the kubelet root (never through a
    symlink), then validates and writes in a worker thread."""

    def __init__(
        self,
        volumes: KubeletVolumes,
        *,
        max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
        capacity: VolumeCapacity | None = None,
    ) -> None:
        self._volumes = volumes
        self._max_total_bytes = max_total_bytes
        self._capacity = capacity or VolumeCapacity()

    async def write(
        self, target: str, files: Sequence[SecretFile], *, gid: int | None = None
    ) -> bool:
        return await run_blocking(self.write_blocking, target, files, gid)

    def write_blocking(
        self, target: str, files: Sequence[SecretFile], gid: int | None = None
    ) -> bool:
        """:meth:`write` in the calling worker thread (``ports_volumes.BlockingPayloadWriter``);
        ``gid``: the group of every file and directory written (the pod's fsGroup)."""
        try:
            fd = self._volumes.open_target_path(target)
        except FileNotFoundError:
            raise FileWriteError(f"target directory {target} does not exist") from None
        except OSError as exc:
            raise FileWriteError(f"failed to open {target}: {exc.strerror or exc}") from None
        try:
            # AtomicWriter.write validates the payload and turns OSError into agent errors.
            writer = AtomicWriter(
                target,
                dir_fd=fd,
                max_total_bytes=self._max_total_bytes,
                capacity=self._capacity,
            )
            return writer.write(files, gid=gid)
        finally:
            os.close(fd)
