"""GCP Secret Manager / Parameter Manager provider (``provider: gcp``), compatible with the
SecretProviderClass format of GoogleCloudPlatform/secrets-store-csi-driver-provider-gcp."""

from agent.providers.gcp.provider import GcpProvider

__all__ = ["GcpProvider"]
