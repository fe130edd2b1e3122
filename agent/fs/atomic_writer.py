"""Kubelet/upstream AtomicWriter semantics: files live in a timestamped directory and appear
through ``..data`` and one top-level symlink per first path component::

    <target>/..data -> ..2026_04_30_12_00_00.abc123      (swapped atomically by rename)
    <target>/..2026_04_30_12_00_00.abc123/<files>         (real directory, 0755)
    <target>/<name> -> ..data/<name>

Names starting with ``..`` are reserved (``agent.fs.layout``). Every operation is relative to a
descriptor of the target directory, so nothing below it is reached through a symlink. Callers
must serialise writes per target (as upstream).
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import secrets
import stat
import time
from collections.abc import Sequence

from agent import crashpoints
from agent.aio.threads import run_blocking
from agent.errors import FileWriteError
from agent.fs import files as _files
from agent.fs.capacity import VolumeCapacity
from agent.fs.confined import KubeletVolumes
from agent.fs.layout import DATA_DIR, DATA_TMP, RESERVED_PREFIX, is_ts_dir_name, remove_name
from agent.fs.paths import DEFAULT_MAX_TOTAL_BYTES, first_component, validate_payload
from agent.model import SecretFile

__all__ = ["AsyncPayloadWriter", "AtomicWriter"]

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def _first_components(files: Sequence[SecretFile]) -> list[str]:
    return list(dict.fromkeys(first_component(f.path) for f in files))


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
            if exc.errno in _NO_SPACE:
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
        self._remove_legacy_entries(names)
        old = self._current_ts_dir()
        # Half-written directories of an interrupted write are never visible: sweep them first,
        # so they do not take the room the new version needs (a full tmpfs).
        self._remove_stale_ts_dirs(keep=old)
        created: list[str] = []
        if (
            old is not None
            and not self._paths_to_remove(files, old)
            and not self._differs(files, old, uid, gid)
        ):
            # Content is current; only repair visible links (e.g. after a legacy cleanup).
            self._ensure_links(names, created)
            return self._prune_links(names) or bool(created)
        new = self._new_ts_dir()
        try:
            self._write_payload(files, new, uid, gid)
            crashpoints.reached("write.payload_written")
            self._ensure_links(names, created)
            crashpoints.reached("write.links_made")
            self._swap(new)
        except BaseException:
            self._rollback(new, created)
            raise
        crashpoints.reached("write.swapped")
        self._prune_links(names)
        self._remove_stale_ts_dirs(keep=new)
        return True

    def _lstat(self, name: str) -> os.stat_result:
        return os.stat(name, dir_fd=self._fd, follow_symlinks=False)

    def _readlink(self, name: str) -> str:
        return os.readlink(name, dir_fd=self._fd)

    def _remove_legacy_entries(self, names: list[str]) -> None:
        """Upstream ``cleanupProviderFiles``: drop non-symlink entries an old provider wrote."""
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                if not stat.S_ISLNK(self._lstat(name).st_mode):
                    remove_name(self._fd, name)

    def _current_ts_dir(self) -> str | None:
        """Name of the directory ``..data`` points to, if it is a sane one of ours."""
        try:
            link = self._readlink(DATA_DIR)
        except OSError:
            return None  # missing, or a real directory (corrupt); the swap replaces it
        # A planted ``..data -> ../../etc`` must never be compared against or deleted.
        if not is_ts_dir_name(link):
            return None
        try:
            if not stat.S_ISDIR(self._lstat(link).st_mode):
                return None
        except FileNotFoundError:
            return None
        return link

    def _paths_to_remove(self, files: Sequence[SecretFile], old: str) -> set[str]:
        """Paths present in the old directory that the new payload no longer has."""
        existing: set[str] = set()
        old_fd = _files.open_subdir(self._fd, [old], create=False)
        try:
            for dirpath, dirnames, filenames, _ in os.fwalk(dir_fd=old_fd):
                rel = posixpath.normpath(dirpath)
                for name in dirnames + filenames:
                    existing.add(name if rel == "." else f"{rel}/{name}")
        finally:
            os.close(old_fd)
        wanted: set[str] = set()
        for file in files:
            path = file.path
            while path:
                wanted.add(path)
                path = posixpath.dirname(path)
        return existing - wanted

    def _differs(
        self, files: Sequence[SecretFile], old: str, uid: int | None, gid: int | None
    ) -> bool:
        # Upstream compares bytes only; a changed mode or owner is also a change here, so
        # per-object modes and ownership take effect without waiting for a content change.
        root_fd = _files.open_subdir(self._fd, [old], create=False)
        try:
            for file in files:
                found = _files.read_regular(root_fd, file.path, len(file.contents) + 1)
                if found is None:
                    return True
                data, st = found
                if data != file.contents or stat.S_IMODE(st.st_mode) != file.mode:
                    return True
                if (uid is not None and st.st_uid != uid) or (gid is not None and st.st_gid != gid):
                    return True
            return False
        finally:
            os.close(root_fd)

    def _new_ts_dir(self) -> str:
        prefix = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime())
        for _ in range(100):
            name = prefix + secrets.token_hex(4)
            try:
                # 0755 (set below) lets group/other traverse regardless of the process umask.
                os.mkdir(name, 0o700, dir_fd=self._fd)
            except FileExistsError:
                continue
            fd = _files.open_subdir(self._fd, [name], create=False)
            try:
                os.fchmod(fd, _files.DIR_MODE)
            finally:
                os.close(fd)
            return name
        raise FileExistsError(errno.EEXIST, "no unused name for a timestamped directory")

    def _write_payload(
        self, files: Sequence[SecretFile], ts_dir: str, uid: int | None, gid: int | None
    ) -> None:
        root_fd = _files.open_subdir(self._fd, [ts_dir], create=False)
        try:
            for file in files:
                parts = file.path.split("/")
                try:
                    dir_fd = _files.open_subdir(root_fd, parts[:-1], create=True)
                    try:
                        _files.write_new_file(
                            dir_fd, parts[-1], file.contents, file.mode, uid=uid, gid=gid
                        )
                    finally:
                        os.close(dir_fd)
                except OSError as exc:
                    if exc.errno in _NO_SPACE:
                        raise
                    raise FileWriteError(
                        f"failed to write file {file.path!r} in {self.target}: "
                        f"{exc.strerror or exc}"
                    ) from None
        finally:
            os.close(root_fd)

    def _ensure_links(self, names: list[str], created: list[str]) -> None:
        """Make every ``<name> -> ..data/<name>`` link exist; record (re)created names."""
        for name in names:
            want = f"{DATA_DIR}/{name}"
            with contextlib.suppress(OSError):  # missing, or not a symlink
                if self._readlink(name) == want:
                    continue
            # A link pointing anywhere else (or a stray entry) is never trusted: replace it.
            remove_name(self._fd, name)
            os.symlink(want, name, dir_fd=self._fd)
            created.append(name)

    def _swap(self, new: str) -> None:
        # A crash between symlink and rename leaves ``..data_tmp`` behind; upstream would then
        # fail every later write with EEXIST.
        remove_name(self._fd, DATA_TMP)
        os.symlink(new, DATA_TMP, dir_fd=self._fd)
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISLNK(self._lstat(DATA_DIR).st_mode):
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

    def _prune_links(self, names: list[str]) -> bool:
        """Remove top-level ``x -> ..data/x`` links the payload no longer has.

        Scanning (rather than trusting upstream's diff of the old directory) also heals links
        left dangling by an earlier interrupted write. Failures are ignored: the new content is
        already visible, and the next write retries.
        """
        keep, pruned = set(names), False
        stale: list[str] = []
        with contextlib.suppress(OSError), os.scandir(self._fd) as entries:
            stale = [
                e.name
                for e in entries
                if not e.name.startswith(RESERVED_PREFIX)
                and e.name not in keep
                and e.is_symlink()
                and self._readlink(e.name) == f"{DATA_DIR}/{e.name}"
            ]
        for name in stale:
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=self._fd)
                pruned = True
        return pruned

    def _remove_stale_ts_dirs(self, keep: str | None) -> None:
        # A failure here must not fail the write (the visible content is fine either way), and
        # whatever is left (also from an earlier crash) is swept by the next write.
        stale: list[str] = []
        with contextlib.suppress(OSError), os.scandir(self._fd) as entries:
            stale = [
                e.name
                for e in entries
                if e.name != keep and is_ts_dir_name(e.name) and e.is_dir(follow_symlinks=False)
            ]
        for name in stale:
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
        self,
        target: str,
        files: Sequence[SecretFile],
        *,
        uid: int | None = None,
        gid: int | None = None,
    ) -> bool:
        return await run_blocking(self.write_blocking, target, files, uid, gid)

    def write_blocking(
        self,
        target: str,
        files: Sequence[SecretFile],
        uid: int | None = None,
        gid: int | None = None,
    ) -> bool:
        """:meth:`write` in the calling worker thread (``ports.BlockingVolumeFiles``)."""
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
            return writer.write(files, uid=uid, gid=gid)
        finally:
            os.close(fd)
