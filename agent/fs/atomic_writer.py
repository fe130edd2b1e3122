"""Kubelet/upstream AtomicWriter semantics: files live in a timestamped directory and appear
through ``..data`` and one top-level symlink per first path component::

    <target>/..data -> ..2026_04_30_12_00_00.abc123      (swapped atomically by rename)
    <target>/..2026_04_30_12_00_00.abc123/<files>         (real directory, 0755)
    <target>/<name> -> ..data/<name>

Names starting with ``..`` are reserved. Callers must serialise writes per target (as upstream).
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import stat
import tempfile
import time
from collections.abc import Sequence

from agent.aio.threads import run_blocking
from agent.errors import FileWriteError
from agent.fs import files as _files
from agent.fs.paths import DEFAULT_MAX_TOTAL_BYTES, first_component, validate_payload
from agent.model import SecretFile

__all__ = ["AsyncPayloadWriter", "AtomicWriter"]

DATA_DIR = "..data"
DATA_TMP = "..data_tmp"
# Matches both our directories and those written by the Go driver or kubelet, so a volume
# written by upstream is taken over cleanly.
_TS_DIR_RE = re.compile(r"^\.\.\d{4}(?:_\d{2}){5}\..+$")


def _first_components(files: Sequence[SecretFile]) -> list[str]:
    return list(dict.fromkeys(first_component(f.path) for f in files))


class AtomicWriter:
    """Synchronous writer for one target directory (which must already exist)."""

    def __init__(self, target: str, *, max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES) -> None:
        self.target = target
        self._max_total_bytes = max_total_bytes

    def write(
        self, files: Sequence[SecretFile], *, uid: int | None = None, gid: int | None = None
    ) -> bool:
        """Project ``files`` atomically; return False when the volume already had this content.

        Raises PayloadError for an invalid payload and FileWriteError for filesystem failures,
        in which case the previous content stays visible.
        """
        validate_payload(files, max_total_bytes=self._max_total_bytes)
        try:
            return self._write(files, uid, gid)
        except OSError as exc:
            raise FileWriteError(
                f"failed to write files in {self.target}: {exc.strerror or exc}"
            ) from None

    def _write(self, files: Sequence[SecretFile], uid: int | None, gid: int | None) -> bool:
        if not os.path.isdir(self.target):
            raise FileWriteError(f"target directory {self.target} does not exist")
        names = _first_components(files)
        self._remove_legacy_entries(names)
        old = self._current_ts_dir()
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
            self._ensure_links(names, created)
            self._swap(new)
        except BaseException:
            self._rollback(new, created)
            raise
        self._prune_links(names)
        self._remove_stale_ts_dirs(keep=new)
        return True

    def _path(self, name: str) -> str:
        return os.path.join(self.target, name)

    def _remove_legacy_entries(self, names: list[str]) -> None:
        """Upstream ``cleanupProviderFiles``: drop non-symlink entries an old provider wrote."""
        for name in names:
            path = self._path(name)
            with contextlib.suppress(FileNotFoundError):
                if not stat.S_ISLNK(os.lstat(path).st_mode):
                    _files.remove_entry(path)

    def _current_ts_dir(self) -> str | None:
        """Name of the directory ``..data`` points to, if it is a sane one of ours."""
        try:
            link = os.readlink(self._path(DATA_DIR))
        except OSError:
            return None  # missing, or a real directory (corrupt); the swap replaces it
        # A planted ``..data -> ../../etc`` must never be compared against or deleted.
        if "/" in link or os.sep in link or not _TS_DIR_RE.match(link):
            return None
        try:
            if not stat.S_ISDIR(os.lstat(self._path(link)).st_mode):
                return None
        except FileNotFoundError:
            return None
        return link

    def _paths_to_remove(self, files: Sequence[SecretFile], old: str) -> set[str]:
        """Paths present in the old directory that the new payload no longer has."""
        old_root = self._path(old)
        existing: set[str] = set()
        for dirpath, dirnames, filenames in os.walk(old_root):
            rel = os.path.relpath(dirpath, old_root).replace(os.sep, "/")
            for name in dirnames + filenames:
                existing.add(name if rel == "." else f"{rel}/{name}")
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
        root_fd = _files.open_dir(self._path(old))
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
        path = tempfile.mkdtemp(prefix=prefix, dir=self.target)
        # 0755 lets group/other traverse regardless of the process umask (mkdtemp gives 0700).
        os.chmod(path, _files.DIR_MODE)
        return os.path.basename(path)

    def _write_payload(
        self, files: Sequence[SecretFile], ts_dir: str, uid: int | None, gid: int | None
    ) -> None:
        root_fd = _files.open_dir(self._path(ts_dir))
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
                    raise FileWriteError(
                        f"failed to write file {file.path!r} in {self.target}: "
                        f"{exc.strerror or exc}"
                    ) from None
        finally:
            os.close(root_fd)

    def _ensure_links(self, names: list[str], created: list[str]) -> None:
        """Make every ``<name> -> ..data/<name>`` link exist; record (re)created names."""
        for name in names:
            path, want = self._path(name), f"{DATA_DIR}/{name}"
            with contextlib.suppress(OSError):  # missing, or not a symlink
                if os.readlink(path) == want:
                    continue
            # A link pointing anywhere else (or a stray entry) is never trusted: replace it.
            _files.remove_entry(path)
            os.symlink(want, path)
            created.append(name)

    def _swap(self, new: str) -> None:
        tmp, data = self._path(DATA_TMP), self._path(DATA_DIR)
        # A crash between symlink and rename leaves ``..data_tmp`` behind; upstream would then
        # fail every later write with EEXIST.
        _files.remove_entry(tmp)
        os.symlink(new, tmp)
        if os.path.lexists(data) and not os.path.islink(data):
            _files.remove_entry(data)  # a real directory cannot be renamed over
        os.rename(tmp, data)

    def _rollback(self, new: str, created: list[str]) -> None:
        with contextlib.suppress(OSError):
            _files.remove_entry(self._path(DATA_TMP))
        with contextlib.suppress(OSError):
            _files.remove_entry(self._path(new))
        for name in created:
            with contextlib.suppress(OSError):
                if os.path.islink(self._path(name)):
                    os.unlink(self._path(name))

    def _prune_links(self, names: list[str]) -> bool:
        """Remove top-level ``x -> ..data/x`` links the payload no longer has.

        Scanning (rather than trusting upstream's diff of the old directory) also heals links
        left dangling by an earlier interrupted write. Failures are ignored: the new content is
        already visible, and the next write retries.
        """
        keep, pruned = set(names), False
        stale: list[str] = []
        with contextlib.suppress(OSError), os.scandir(self.target) as entries:
            stale = [
                e.path
                for e in entries
                if not e.name.startswith(_files.RESERVED_PREFIX)
                and e.name not in keep
                and e.is_symlink()
                and os.readlink(e.path) == f"{DATA_DIR}/{e.name}"
            ]
        for path in stale:
            with contextlib.suppress(OSError):
                os.unlink(path)
                pruned = True
        return pruned

    def _remove_stale_ts_dirs(self, keep: str) -> None:
        # The new content is already visible: a failure here must not fail the write, and
        # whatever is left (also from an earlier crash) is swept by the next write.
        stale: list[os.DirEntry[str]] = []
        with contextlib.suppress(OSError), os.scandir(self.target) as entries:
            stale = [e for e in entries if e.name != keep and _TS_DIR_RE.match(e.name)]
        for entry in stale:
            with contextlib.suppress(OSError):
                if entry.is_dir(follow_symlinks=False):
                    _files.remove_entry(entry.path)


class AsyncPayloadWriter:
    """``PayloadWriter`` port: validates, then writes in a worker thread."""

    def __init__(self, *, max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES) -> None:
        self._max_total_bytes = max_total_bytes

    async def write(
        self,
        target: str,
        files: Sequence[SecretFile],
        *,
        uid: int | None = None,
        gid: int | None = None,
    ) -> bool:
        # AtomicWriter.write validates the payload and turns OSError into FileWriteError itself.
        writer = AtomicWriter(target, max_total_bytes=self._max_total_bytes)
        return await run_blocking(writer.write, files, uid=uid, gid=gid)
