"""The registry builds the Azure provider lazily (nor cryptography until needed), from the
agent's flags."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from agent.providers.registry import ProviderRegistry

    registry = ProviderRegistry(timeout=5, version_key=b"k" * 32, load_entry_points=False)
    registry.get("vault")
    print("after-vault", "agent.providers.azure" in sys.modules, "cryptography" in sys.modules)
    provider = registry.get("azure")
    print("after-azure", "agent.providers.azure" in sys.modules, "cryptography" in sys.modules)
    asyncio.run(registry.close())
    """
)


def test_azure_provider_and_cryptography_load_lazily() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    lines = out.stdout.split("\n")
    # cryptography waits for the first certificate-backed secret or key.
    assert lines[:2] == ["after-vault False False", "after-azure True False"]


async def test_agent_flags_reach_the_provider() -> None:
    from agent.providers.azure import AzureProvider
    from agent.providers.registry import ProviderRegistry

    options = {
        "azure_cloud_name": "AzureChinaCloud",
        "azure_construct_pem_chain": "false",
        "azure_write_cert_and_key_in_separate_files": "true",
    }
    registry = ProviderRegistry(
        timeout=10, version_key=b"k" * 32, options=options, load_entry_points=False
    )
    provider = registry.get("azure")
    assert isinstance(provider, AzureProvider)
    assert provider.settings() == ("AzureChinaCloud", False, True)
    defaults = ProviderRegistry(timeout=10, version_key=b"k" * 32, load_entry_points=False)
    assert defaults.get("azure").settings() == ("AzurePublicCloud", True, False)  # type: ignore[attr-defined]
    await registry.close()
    await defaults.close()
