"""Secret sync work started by kubelet's calls, run in the background.

A publish that mounted (or refetched changed content) and an unpublish that removed a volume
hand their volume to ``ports_sync.SecretSync`` here and return at once: kubelet never waits on
Secret writes, and an API outage never slows a mount. The sync itself serializes work per
volume and never raises for a sync failure; ``close`` cancels what is still running at
shutdown (the next start's re-sync catches up).
"""

from __future__ import annotations

from agent.aio.tasks import TaskSet
from agent.model import SecretProviderClass, VolumeRecord
from agent.ports_sync import SecretSync


class SecretSyncJobs:
    def __init__(self, sync: SecretSync) -> None:
        self.sync = sync
        self._tasks = TaskSet("secret-sync")

    def written(self, record: VolumeRecord, spc: SecretProviderClass) -> None:
        """The volume's files were (re)written from ``spc``."""
        self._tasks.spawn(self.sync.volume_written(record, spc), f"write:{record.target_path}")

    def removed(self, record: VolumeRecord) -> None:
        """The volume is gone."""
        self._tasks.spawn(self.sync.volume_removed(record), f"remove:{record.target_path}")

    def __len__(self) -> int:
        return len(self._tasks)

    async def wait(self) -> None:
        """Until every job started so far has finished (tests, orderly shutdown)."""
        await self._tasks.wait()

    async def close(self) -> None:
        await self._tasks.close()
