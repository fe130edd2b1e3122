"""Kubernetes-free adapters: SecretProviderClasses and pod statuses kept in a directory."""

from agent.standalone.spc_source import DirectorySecretProviderClassSource
from agent.standalone.status_store import DirectoryPodStatusStore

__all__ = ["DirectoryPodStatusStore", "DirectorySecretProviderClassSource"]
