"""The steps publish and rotation share: ask a provider for a volume's content within the
agent's deadline, and store what it returned.

Storing is two steps so a rotation can stop after the first: ``write_files`` swaps the visible
files in atomically only when their content changed; ``record`` then saves the volume's
metadata and, when the volume owns it, its pod status (``volume_statuses``: a pod's second
volume of one class never overwrites the first one's), concurrently (both finish before a
failure is raised, so an undo never races one still running), and puts the record in the
mount table. The crash points ``record.*`` (``agent.crashpoints``) follow each save, for
publish and rotation alike.
"""

from __future__ import annotations

import asyncio

from agent import crashpoints
from agent.core.mount_table import MountTable
from agent.core.records import record_to_metadata
from agent.core.volume_statuses import VolumeStatuses
from agent.errors import ProviderError, ProviderTimeout
from agent.model import MountResult, ProviderRequest, VolumeRecord
from agent.ports import PayloadWriter, PodStatusStore, Provider, VolumeMetadataStore


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

    async def write_files(self, target_path: str, result: MountResult) -> bool:
        """Swap the provider's files in; True when the visible content changed."""
        # No files but versions: a legacy plugin wrote into target_path itself (upstream #551).
        return bool(result.files) and await self._writer.write(target_path, result.files)

    async def record(self, record: VolumeRecord) -> None:
        """Save metadata and (if ``record`` owns it) pod status, then put ``record`` in the
        mount table."""
        writes = [self._save_metadata(record)]
        if self.statuses.may_write(record):
            writes.append(self._write_status(record))
        outcomes = await asyncio.gather(*writes, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        self._table.put(record)

    async def _save_metadata(self, record: VolumeRecord) -> None:
        await self._metadata.save(record.target_path, record_to_metadata(record))
        crashpoints.reached("record.metadata_saved")

    async def _write_status(self, record: VolumeRecord) -> None:
        await self.statuses.write(record)
        crashpoints.reached("record.status_saved")
