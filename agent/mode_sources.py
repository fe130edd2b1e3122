"""Where each mode's SecretProviderClasses, service accounts and node labels come from, and
where pod statuses go: the Kubernetes adapter, or a directory of manifests (standalone).

Kubernetes mode imports the API client only here, so standalone mode never loads it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agent.aio.backoff import BackoffPolicy
from agent.config import Settings
from agent.errors import ConfigError
from agent.metrics import Metrics
from agent.ports import (
    NodeLabelSource,
    PodEventSink,
    PodStatusStore,
    SecretProviderClassSource,
    ServiceAccountSource,
    ServiceAccountTokenMinter,
)

if TYPE_CHECKING:
    from agent.k8s.adapter import KubernetesAdapter
    from agent.standalone.spc_source import DirectorySecretProviderClassSource
    from agent.standalone.status_store import DirectoryPodStatusStore


@dataclass(frozen=True, slots=True)
class ModeSources:
    """Where SecretProviderClasses and service accounts come from, and statuses go."""

    spcs: SecretProviderClassSource
    statuses: PodStatusStore
    service_accounts: ServiceAccountSource
    events: PodEventSink | None = None
    cluster: KubernetesAdapter | None = None
    minter: ServiceAccountTokenMinter | None = None
    manifests: DirectorySecretProviderClassSource | None = None
    status_files: DirectoryPodStatusStore | None = None
    node_labels: NodeLabelSource | None = None


def configuration_sources(
    settings: Settings, metrics: Metrics, retry_policy: BackoffPolicy | None
) -> ModeSources:
    """The sources of the mode ``settings`` choose: Kubernetes unless ``--standalone-dir``;
    ConfigError naming that flag when its directory is missing or cannot take statuses."""
    if not settings.standalone_dir:
        # Imported only in Kubernetes mode: standalone never pays for the API client.
        from agent.k8s.adapter import KubernetesAdapter

        cluster = KubernetesAdapter(settings, metrics.api_request, retry_policy)
        return ModeSources(
            cluster.spcs,
            cluster.statuses,
            cluster.service_accounts,
            cluster.events,
            cluster,
            minter=cluster.tokens,
            node_labels=cluster.node_labels,
        )
    from agent.standalone.nodes import DirectoryNodeLabels
    from agent.standalone.spc_source import DirectorySecretProviderClassSource
    from agent.standalone.status_store import DirectoryPodStatusStore

    directory = Path(settings.standalone_dir)
    if not directory.is_dir():
        raise ConfigError(f"--standalone-dir: {directory} is not a directory")
    manifests = DirectorySecretProviderClassSource(directory)
    status_files = DirectoryPodStatusStore(directory)
    _require_writable(status_files.root)
    # Without --nodeid there is no Node manifest to look for.
    nodes = DirectoryNodeLabels(manifests, settings.node_id) if settings.node_id else None
    return ModeSources(
        manifests,
        status_files,
        manifests,
        manifests=manifests,
        status_files=status_files,
        node_labels=nodes,
    )


def _require_writable(status_dir: Path) -> None:
    """ConfigError naming ``--standalone-dir`` when no pod status could ever be written there:
    every NodePublishVolume would fail on it (typical of an unprivileged run on root's files)."""
    existing = next(path for path in (status_dir, status_dir.parent) if path.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        uid = os.geteuid() if hasattr(os, "geteuid") else -1
        raise ConfigError(
            f"--standalone-dir: the agent (uid {uid}) cannot write pod statuses under "
            f"{status_dir}: make {existing} writable by the agent's user"
        )
