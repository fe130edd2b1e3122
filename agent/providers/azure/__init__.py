"""Azure Key Vault provider, compatible with Azure/secrets-store-csi-driver-provider-azure
SecretProviderClasses (``provider: azure``).

It speaks the Key Vault REST API (7.4) and Entra ID's OAuth endpoints through the agent's
aiohttp rather than the Azure SDK for Python: see docs/providers/azure.md for why.
"""

from agent.providers.azure.provider import AzureProvider

__all__ = ["AzureProvider"]
