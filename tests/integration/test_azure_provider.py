"""AzureProvider against the fake Key Vault and Entra over TLS: content of every object type."""

from __future__ import annotations

from agent.model import MountResult
from tests.support.azure import AzureWorld


def files(result: MountResult) -> dict[str, bytes]:
    return {f.path: f.contents for f in result.files}


async def test_secret_with_workload_identity(azure: AzureWorld) -> None:
    version = azure.vault.add_secret("db-password", "s3cret")
    provider = azure.provider()
    try:
        result = await provider.mount(
            azure.request([{"objectName": "db-password", "objectType": "secret"}], clientID="11111111-aaaa-4bbb-8ccc-000000000001")
        )
    finally:
        await provider.close()
    assert files(result) == {"db-password": b"s3cret"}
    assert [(v.id, v.version) for v in result.versions] == [("secret/db-password", version)]
