"""``ports.SecretSync`` where Secret sync is off (standalone mode has no Secrets to write)."""

from __future__ import annotations

from agent.model import SecretProviderClass, VolumeRecord


class NoSecretSync:
    async def volume_written(self, record: VolumeRecord, spc: SecretProviderClass) -> None:
        return None

    async def volume_removed(self, record: VolumeRecord) -> None:
        return None
