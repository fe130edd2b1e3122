"""Vault and OpenBao provider, compatible with hashicorp/vault-csi-provider SecretProviderClasses.

The registry builds ``VaultProvider(name="vault", ...)`` and ``VaultProvider(name="openbao", ...)``;
the name picks the flavour (default audience and accepted parameter spellings).
"""

from agent.providers.vault.client import VaultClient
from agent.providers.vault.provider import VaultProvider

__all__ = ["VaultClient", "VaultProvider"]
