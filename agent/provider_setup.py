"""The provider registry the agent serves with, as its flags configure it.

The built-in providers ``--builtin-providers`` keeps, the options they read (Vault address,
Azure cloud and PEM handling, the EKS Pod Identity Agent URL), the plugin socket directories,
and the HMAC key behind object versions, kept under ``--state-dir`` so versions survive
restarts.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from pathlib import Path

import structlog

from agent.config import Settings
from agent.mode_sources import ModeSources
from agent.platform import NodePlatform
from agent.providers.factories import BUILTIN_FACTORIES, ProviderFactory
from agent.providers.registry import ProviderRegistry

log = structlog.get_logger("agent.app")


def build_providers(
    settings: Settings, platform: NodePlatform, sources: ModeSources
) -> ProviderRegistry:
    """The registry for ``settings`` on ``platform``, reading service accounts and node labels
    from the mode's ``sources``."""
    return ProviderRegistry(
        timeout=settings.provider_timeout,
        version_key=load_version_key(settings.state_dir),
        options={
            "vault_address": settings.vault_address,
            "aws_pod_identity_endpoint": settings.aws_pod_identity_endpoint,
            "azure_cloud_name": settings.azure_cloud_name,
            "azure_construct_pem_chain": str(settings.azure_construct_pem_chain).lower(),
            "azure_write_cert_and_key_in_separate_files": str(
                settings.azure_write_cert_and_key_in_separate_files
            ).lower(),
        },
        trusted_dirs=settings.trusted_file_dirs,
        plugin_directories=(*settings.additional_provider_volume_paths, settings.provider_volume),
        max_recv_bytes=settings.max_call_recv_msg_size,
        service_accounts=sources.service_accounts,
        prefer_plugins=settings.prefer_plugin_providers,
        max_payload_bytes=settings.payload_limit,
        unix_sockets=platform.sockets,
        node_labels=sources.node_labels,
        factories=builtin_factories(settings.builtin_providers),
    )


def builtin_factories(names: Sequence[str]) -> dict[str, ProviderFactory]:
    """The built-in providers ``--builtin-providers`` keeps; a name left out is served by an
    upstream plugin socket if one exists, like any provider the agent does not build in."""
    return {name: factory for name, factory in BUILTIN_FACTORIES.items() if name in names}


_STATE_DIR_FIX = (
    "point --state-dir at a directory the agent's user can write (an unprivileged run's "
    "default /var/run/secrets-store-agent is root's); until then object versions change "
    "whenever the agent restarts"
)


def load_version_key(state_dir: str) -> bytes:
    """The HMAC key behind object versions; kept on the node so versions survive restarts."""
    path = Path(state_dir) / "version.key"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    except OSError as err:
        log.warning(
            "agent.version_key_unreadable", path=str(path), error=err.strerror, fix=_STATE_DIR_FIX
        )
        return secrets.token_bytes(32)
    key = secrets.token_bytes(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(key)
    except FileExistsError:
        return path.read_bytes()
    except OSError as err:
        # Still works; object versions just change once when the agent restarts.
        log.warning(
            "agent.version_key_not_saved", path=str(path), error=err.strerror, fix=_STATE_DIR_FIX
        )
    return key
