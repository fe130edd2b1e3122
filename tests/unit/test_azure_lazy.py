"""Memory is part of the product: the Azure provider and cryptography load only when used."""

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
