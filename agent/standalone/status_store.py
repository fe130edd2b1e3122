"""SecretProviderClassPodStatus records as YAML files (standalone mode, no Kubernetes API).

Each status is the object upstream would create (upstream §6, §10.2), written to
``<dir>/status/<namespace>/<name>.yaml`` so an operator can ``cat`` what is mounted where and a
restarted agent can rebuild its view with :meth:`DirectoryPodStatusStore.load_all`.

Files are written BEHIND the publish, as Kubernetes mode writes its objects through the API
(``agent.k8s.pod_statuses``): ``upsert`` checks the name, records the wanted state and returns;
one writer task writes what is wanted, coalesced per status, in one worker-thread hop per batch,
and retries a failed write with backoff (logged). On the node's disk (not tmpfs) a file's
create and rename cost ~0.4 ms, a tenth of a paced publish, and kubelet need not wait for it:
statuses are informational, a restart rebuilds from the volumes and their metadata and
rewrites the statuses from them (``agent.core.recovery``). ``delete`` drops a pending write of
that status and waits for one in flight, so an unpublish never leaves a status behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog
import yaml

from agent import crashpoints
from agent.aio.backoff import Backoff, BackoffPolicy
from agent.aio.threads import run_blocking
from agent.documents.names import shown_name
from agent.documents.pod_status import from_manifest, to_manifest
from agent.errors import StatusError, safe_message
from agent.model import PodStatus
from agent.standalone.yaml_codec import SafeLoader

FILE_MODE = 0o644  # status is not secret; readable by whoever inspects the node

# Names become path components: allow Kubernetes object-name characters only, so a crafted
# pod or class name can never step outside the status directory. At most 253 characters, the
# API server's limit, so this mode holds every status Kubernetes mode can (``_file_stem``).
_SAFE_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?")
# With ".yaml", the longest file name most filesystems allow (255 bytes).
_STEM_MAX = 250
# A status being written, renamed over its file when whole (``_write_atomically``).
_TMP_PREFIX, _TMP_SUFFIX = ".status-", ".tmp"

log = structlog.get_logger(__name__)

Key = tuple[str, str]  # (namespace, name)
# How far behind the publish the writer starts: past the reply's encoding and socket writes, so
# its worker thread does not compete with them for the GIL (and a burst of pod starts shares
# one hop). Not a correctness bound: nothing waits for the file.
WRITE_BEHIND_DELAY_S = 0.005


class DirectoryPodStatusStore:
    """Implements ``ports.PodStatusStore`` with one YAML file per status object."""

    def __init__(
        self,
        directory: Path,
        *,
        backoff: BackoffPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``backoff`` paces the retries of a failed write; ``sleep`` waits them out (tests
        pass one that does not wait)."""
        self.root = Path(directory) / "status"
        self._backoff = Backoff(backoff or BackoffPolicy())
        self._sleep = sleep
        self._wanted: dict[Key, PodStatus] = {}
        self._writing: dict[Key, PodStatus] = {}  # the batch in the worker thread now
        self._batch_done = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    def path_for(self, namespace: str, name: str) -> Path:
        """``<root>/<namespace>/<name>.yaml`` (``_file_stem`` for a name past 250 characters).
        StatusError, the value quoted and cut, for a name that cannot be a file name here."""
        for value, what in ((namespace, "namespace"), (name, "name")):
            if not _SAFE_NAME.fullmatch(value):
                raise StatusError(f"invalid pod status {what} {shown_name(value)}")
        return self.root / namespace / f"{_file_stem(name)}.yaml"

    async def upsert(self, status: PodStatus) -> None:
        """Queue ``status`` to be written behind the caller; StatusError at once for a name
        that cannot be a file name here."""
        self.path_for(status.namespace, status.name)
        self._wanted[(status.namespace, status.name)] = status
        self._idle.clear()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_behind(), name="pod-status-files")

    async def wait_idle(self) -> None:
        """Until every status queued so far is on disk (or given up at :meth:`close`)."""
        await self._idle.wait()

    async def close(self) -> None:
        """Stop the writer after one last try of what is still queued (agent shutdown).

        A batch in its worker thread is waited for, not cancelled: what it failed to write is
        queued again, so the last try includes it, and what fails then is logged as abandoned.
        """
        while self._writing:
            await self._batch_done.wait()
        # Not in a batch now: the writer is in its start delay or a backoff pause, or done.
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        if self._wanted:
            failed = await self._write_wanted()
            for (namespace, name), reason in failed.items():
                self._wanted.pop((namespace, name), None)
                log.error(
                    "pod_status.write_abandoned", namespace=namespace, name=name, error=reason
                )
        self._idle.set()

    async def _write_behind(self) -> None:
        """Write what is wanted until nothing is; a failed write is retried after backoff
        unless a newer wish or a delete replaced it."""
        await asyncio.sleep(WRITE_BEHIND_DELAY_S)
        while self._wanted:
            failed = await self._write_wanted()
            for key, reason in failed.items():
                log.warning(
                    "pod_status.write_retrying", namespace=key[0], name=key[1], error=reason
                )
            if failed:
                await self._sleep(self._backoff.next_delay())
            else:
                self._backoff.reset()
        self._idle.set()

    async def _write_wanted(self) -> dict[Key, str]:
        """One batch: everything wanted now, in one worker-thread hop; {key: why} for the writes
        that failed, each queued again unless a newer wish or a delete came meanwhile. A
        ``delete`` of a status in the batch waits for ``_batch_done``."""
        batch, self._wanted = self._wanted, {}
        self._writing = batch
        self._batch_done = asyncio.Event()
        try:
            failed = await run_blocking(self._write_batch, batch)
        finally:
            self._writing = {}
            self._batch_done.set()
        for key in failed:
            self._wanted.setdefault(key, batch[key])
        return failed

    def _write_batch(self, batch: dict[Key, PodStatus]) -> dict[Key, str]:
        """Worker thread: write each status; {key: why} for those that failed."""
        failed: dict[Key, str] = {}
        for key, status in batch.items():
            try:
                self._write_file(status)
            except Exception as err:  # anything: the writer task must outlive one bad status
                failed[key] = safe_message(err)
                continue
            crashpoints.reached("record.status_saved")
        return failed

    def _write_file(self, status: PodStatus) -> None:
        path = self.path_for(status.namespace, status.name)
        # Compact JSON is valid YAML and produced by the C encoder, far faster than PyYAML's
        # Python-side representer (or json's indent mode); this write is on the publish path.
        text = json.dumps(to_manifest(status)) + "\n"
        try:
            _write_atomically(path, text.encode())
        except OSError as exc:
            raise StatusError(
                f"cannot write pod status {status.namespace}/{shown_name(status.name)}: "
                f"{exc.strerror}"
            ) from exc

    async def delete(self, namespace: str, name: str) -> None:
        """Remove the file now; a write of it still queued is dropped, one in flight awaited."""
        path = self.path_for(namespace, name)
        key = (namespace, name)
        while key in self._writing:
            await self._batch_done.wait()
        self._wanted.pop(key, None)  # also a failed write queued again for a retry
        try:
            await run_blocking(path.unlink, missing_ok=True)
        except OSError as exc:
            raise StatusError(
                f"cannot delete pod status {namespace}/{shown_name(name)}: {exc.strerror}"
            ) from exc

    async def load_all(self) -> list[PodStatus]:
        """Every readable status, sorted by namespace and name; broken files are skipped. Read
        once, at the restart's recovery before anything is written: the temporary files of
        writes a kill interrupted (``_write_atomically``) are removed then."""
        loaded, problems = await run_blocking(_load_all, self.root)
        for file, reason in problems:
            log.warning("standalone.status_invalid", file=file, reason=reason)
        return loaded


def _file_stem(name: str) -> str:
    """The file name, without ".yaml", of status ``name``: the name itself up to 250
    characters; past that (a status name of 251 to 253 characters, which the API server
    accepts) its first 233 characters, '~' and 16 hex digits of its SHA-256. No name has a
    '~' (``_SAFE_NAME``), so no two statuses share a file; ``load_all`` reads each status's
    name from its file, not from the file's name."""
    if len(name) <= _STEM_MAX:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return f"{name[: _STEM_MAX - len(digest) - 1]}~{digest}"


def _write_atomically(path: Path, data: bytes) -> None:
    """Write to a temp file beside ``path`` and rename it over, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_TMP_PREFIX, suffix=_TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            # No fsync: the status describes tmpfs mounts, which do not survive a reboot either.
            handle.write(data)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _load_all(root: Path) -> tuple[list[PodStatus], list[tuple[str, str]]]:
    loaded: list[PodStatus] = []
    problems: list[tuple[str, str]] = []
    if not root.is_dir():
        return loaded, problems
    for stale in root.glob(f"*/{_TMP_PREFIX}*{_TMP_SUFFIX}"):
        with contextlib.suppress(OSError):
            stale.unlink()
    for path in sorted(root.glob("*/*.yaml")):
        try:
            document = yaml.load(path.read_text(encoding="utf-8"), Loader=SafeLoader)  # noqa: S506
            loaded.append(from_manifest(document))
        except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError) as exc:
            problems.append((str(path), " ".join(str(exc).split())))
    return loaded, problems
