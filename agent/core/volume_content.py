"""The steps publish and rotation share: ask a provider for a volume's content within the
agent's deadline, and store what it returned.

Storing is two steps so a rotation can stop after the first: ``write_files`` swaps the visible
files in atomically only when their content changed; ``record`` then saves the volume's
metadata, hands its pod status to the status store when the volume owns it
(``volume_statuses``: a pod's second volume of one class never overwrites the first one's),
and puts the record in the mount table. Both status stores write behind the caller (the API
object in Kubernetes mode, the file in standalone mode: statuses are informational, a restart
rebuilds them from the volumes' metadata), so no caller waits on a status. The crash point
``record.metadata_saved`` (``agent.crashpoints``) follows the metadata save; the stores reach
``record.status_saved``.

A publish stores in one step (``store``): when the writer and the metadata store have blocking
forms (``ports_volumes.BlockingPayloadWriter``...), the mount the publish still needs, the write
and the metadata save run one after the other in ONE worker-thread hop. Kubelet calls between pod
starts, so the agent's threads are asleep and every hop pays a wake-up (0.03-0.2 ms on a busy
node). Same order on disk, same crash points in the same order, same errors.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from agent import crashpoints
from agent.aio.threads import run_blocking
from agent.core.mount_table import MountTable
from agent.core.records import record_to_metadata
from agent.core.volume_statuses import VolumeStatuses
from agent.errors import ProviderError, ProviderTimeout
from agent.model import MountResult, ProviderRequest, SecretFile, VolumeRecord
from agent.ports import PodStatusStore, Provider
from agent.ports_volumes import (
    BlockingMetadataStore,
    BlockingMounter,
    BlockingPayloadWriter,
    PayloadWriter,
    VolumeMetadataStore,
)


async def fetch_content(
    provider: Provider, name: str, request: ProviderRequest, timeout: float
) -> MountResult:
    """``provider.mount`` under ``timeout`` seconds (``--provider-timeout``).

    Raises ProviderTimeout past the deadline, ProviderError when the provider cancels its own
    call or returns no object versions, and whatever AgentError the provider raised.
    """
    try:
        async with asyncio.timeout(timeout):
            result = await provider.mount(request)
    except TimeoutError:
        raise ProviderTimeout(
            f"provider {name!r} did not answer within {timeout:g}s (--provider-timeout)"
        ) from None
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # we are being cancelled
        # The provider cancelled itself; without this the caller would hang to its deadline.
        raise ProviderError(f"provider {name!r} cancelled its own call") from None
    if not result.versions:
        raise ProviderError(f"provider {name!r} returned no object versions")
    return result


class VolumeContentStore:
    """Writes a volume's files and records it (mount table, metadata, pod status)."""

    def __init__(
        self,
        writer: PayloadWriter,
        metadata: VolumeMetadataStore,
        statuses: PodStatusStore,
        table: MountTable,
        node_name: str,
    ) -> None:
        self._writer = writer
        self._metadata = metadata
        self.statuses = VolumeStatuses(statuses, table, node_name)
        self._table = table
        self._blocking: tuple[BlockingPayloadWriter, BlockingMetadataStore] | None = None
        if isinstance(writer, BlockingPayloadWriter) and isinstance(
            metadata, BlockingMetadataStore
        ):
            self._blocking = (writer, metadata)

    def joins_mount(self, mounter: object) -> BlockingMounter | None:
        """``mounter`` when :meth:`store` can mount in its hop; None: mount before storing."""
        if self._blocking is not None and isinstance(mounter, BlockingMounter):
            return mounter
        return None

    async def store(
        self,
        record: VolumeRecord,
        files: Sequence[SecretFile],
        written: Callable[[bool], None],
        mount: BlockingMounter | None = None,
        precheck: Callable[[], bool] | None = None,
    ) -> bool:
        """Mount (``mount``, from :meth:`joins_mount`), write the files, then record the volume.

        ``precheck`` (with ``mount`` only) runs first in the same hop; when it returns False
        nothing is mounted, written or recorded, and this returns False. ``written(changed)``
        is told whether the visible content changed as soon as the write succeeded, also when
        a save then fails. Raises what ``precheck``, the mount or the write raised (the volume
        is not recorded), else the first failure of the saves, once both were tried.
        """
        if self._blocking is None:
            assert mount is None, "mount before storing: the stores have no blocking form"
            gid = record.mount_group
            written(bool(files) and await self._writer.write(record.target_path, files, gid=gid))
            await self.record(record)
            return True
        stored, changed, failure = await run_blocking(
            self._store_blocking, record, files, mount, precheck
        )
        if not stored:
            return False
        written(changed)
        if self.statuses.may_write(record):
            try:
                await self.statuses.write(record)  # queued: written behind the reply
            except Exception as err:
                failure = failure or err
        if failure is not None:
            raise failure
        self._table.put(record)
        return True

    def _store_blocking(
        self,
        record: VolumeRecord,
        files: Sequence[SecretFile],
        mount: BlockingMounter | None,
        precheck: Callable[[], bool] | None,
    ) -> tuple[bool, bool, Exception | None]:
        """The worker-thread side of :meth:`store`: (stored, content changed, metadata save
        failure)."""
        assert self._blocking is not None
        writer, metadata = self._blocking
        target = record.target_path
        if precheck is not None and not precheck():
            return False, False, None
        if mount is not None:
            mount.mount_blocking(target)
        # No files but versions: a legacy plugin wrote into target_path itself (upstream #551).
        changed = bool(files) and writer.write_blocking(target, files, record.mount_group)
        try:
            metadata.save_blocking(target, record_to_metadata(record))
        except Exception as err:
            return True, changed, err
        crashpoints.reached("record.metadata_saved")
        return True, changed, None

    async def write_files(self, record: VolumeRecord, result: MountResult) -> bool:
        """Swap the provider's files in, in the record's group; True when the visible content
        (or its group) changed."""
        # No files but versions: a legacy plugin wrote into target_path itself (upstream #551).
        if not result.files:
            return False
        return await self._writer.write(record.target_path, result.files, gid=record.mount_group)

    async def record(self, record: VolumeRecord) -> None:
        """Save metadata, queue the pod status (if ``record`` owns it), then put ``record`` in
        the mount table. Raises the first failure once both were tried."""
        failure: Exception | None = None
        try:
            await self._metadata.save(record.target_path, record_to_metadata(record))
            crashpoints.reached("record.metadata_saved")
        except Exception as err:
            failure = err
        if self.statuses.may_write(record):
            try:
                await self.statuses.write(record)
            except Exception as err:
                failure = failure or err
        if failure is not None:
            raise failure
        self._table.put(record)
