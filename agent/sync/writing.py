"""One volume's Secrets written from its files: each checked entry's data built from the mounted
files (in a worker thread, from one content version), then created or updated with the
consumer's owner references (``apply``), under that Secret's lock. Failures are reported
(``reporting``); the caller learns whether one is worth retrying sooner.
"""

from __future__ import annotations

from agent.aio.locks import KeyedLock
from agent.aio.threads import run_blocking
from agent.core.mount_table import MountTable
from agent.errors import InvalidRequest
from agent.model import OwnerReference, SecretObject, VolumeRecord
from agent.ports_sync import SecretStore
from agent.ports_volumes import VolumeFileReader
from agent.sync.apply import WriteFailed, ensure_secret, managed_labels
from agent.sync.data import BuiltData, read_volume_data
from agent.sync.reporting import FAILED_TO_CREATE, ROTATION_FAILED, SyncReporter
from agent.sync.spec import SecretSpec

Owners = tuple[OwnerReference, ...]


class SecretWriter:
    def __init__(
        self,
        store: SecretStore,
        table: MountTable,
        read_files: VolumeFileReader,
        report: SyncReporter,
        secret_locks: KeyedLock,
    ) -> None:
        """``secret_locks`` serializes work on one Secret in this process (shared with the
        releases of it)."""
        self._store = store
        self._table = table
        self._read_files = read_files
        self._report = report
        self._secret_locks = secret_locks

    async def write(
        self, record: VolumeRecord, specs: tuple[SecretSpec, ...], owners: Owners
    ) -> tuple[int, bool]:
        """(Secrets now in sync, whether a failure is worth retrying sooner)."""
        if not specs:
            return 0, False
        try:
            built = await run_blocking(
                read_volume_data, record.target_path, specs, self._read_files
            )
        except (OSError, InvalidRequest) as err:
            if self._table.get(record.target_path) is None:
                return 0, False  # unpublished while it was being read
            why = err.message if isinstance(err, InvalidRequest) else err.strerror
            message = f"cannot read the mounted files of {record.target_path}: {why}"
            self._report.failed(record, FAILED_TO_CREATE, "FileReadError", message)
            return 0, True
        synced, retry = 0, False
        for item in built:
            if item.error:
                self._report.failed(record, FAILED_TO_CREATE, "InvalidSecretData", item.error)
                continue
            written = await self._ensure(record, item, owners)
            synced += written is True
            retry |= written is None
        return synced, retry

    async def _ensure(self, record: VolumeRecord, built: BuiltData, owners: Owners) -> bool | None:
        """True: in sync; False: refused for good (a user's Secret); None: failed, retry."""
        spec, pod = built.spec, record.pod
        wanted = SecretObject(
            namespace=pod.namespace,
            name=spec.secret_name,
            type=spec.type,
            data=built.data,
            labels=managed_labels(dict(spec.labels)),
            annotations=dict(spec.annotations),
        )
        async with self._secret_locks.hold(wanted.ref):
            try:
                outcome, before = await ensure_secret(self._store, wanted, owners, pod.uid)
            except WriteFailed as failed:
                reason = ROTATION_FAILED if failed.existed else FAILED_TO_CREATE
                message = f"secret {wanted.ref}: {failed.error.message}"
                self._report.failed(record, reason, failed.error.reason, message)
                return None
        return self._report.written(record, wanted, outcome, before)
