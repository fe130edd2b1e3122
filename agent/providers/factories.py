"""What the agent hands a provider factory, and the factories it knows before any plugin.

A factory takes a :class:`ProviderContext` and returns an object that satisfies
:class:`agent.ports.Provider`; third-party packages publish theirs as Python entry points in the
group ``secrets_store_agent.providers`` (their documented import path is
``agent.providers.registry``, which re-exports ``ProviderContext`` and ``ProviderFactory``).
The built-in providers' factories are ``LazyFactory``s (loading.py): a provider's package, and
the libraries only it needs (botocore, cryptography, Google's), load on its first use.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import structlog

from agent.config import DEFAULT_MAX_PAYLOAD_BYTES
from agent.ports import NodeLabelSource, Provider, ServiceAccountSource
from agent.providers.loading import LazyFactory

ENTRY_POINT_GROUP = "secrets_store_agent.providers"

log = structlog.get_logger("agent.providers")


@dataclass(frozen=True, slots=True)
class ProviderContext:
    """What the agent hands every provider factory."""

    name: str
    timeout: float
    version_key: bytes = field(repr=False)  # the HMAC key behind object versions
    options: Mapping[str, str]
    # Directories whose files a SecretProviderClass may name (--trusted-file-dirs).
    trusted_dirs: tuple[str, ...] = ()
    # Service-account annotations (cloud identities): the API, or manifests in standalone mode.
    service_accounts: ServiceAccountSource | None = None
    # The most a volume's files may hold (--max-payload-size), to bound what a store answers.
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    # This node's labels (topology): the API's Node, a Node manifest in standalone mode, or None.
    node_labels: NodeLabelSource | None = None


ProviderFactory = Callable[[ProviderContext], Provider]


def _vault(context: ProviderContext) -> Provider:
    from agent.providers.vault import VaultProvider

    return VaultProvider(
        name=context.name,
        default_address=context.options.get("vault_address") or None,
        version_key=context.version_key,
        timeout=context.timeout,
        trusted_dirs=context.trusted_dirs,
        max_payload_bytes=context.max_payload_bytes,
    )


def _aws(context: ProviderContext) -> Provider:
    # Imported here: botocore (and jmespath) load only on a node that mounts an AWS volume.
    from agent.providers.aws import AwsProvider

    return AwsProvider(
        name=context.name,
        service_accounts=context.service_accounts,
        node_labels=context.node_labels,
        # Ends a little before the core's deadline, so its own error (which regions) is reported.
        timeout=context.timeout * PLUGIN_DEADLINE_SHARE,
        pod_identity_endpoint=context.options.get("aws_pod_identity_endpoint", ""),
    )


def _azure(context: ProviderContext) -> Provider:
    # Imported here: a node without Azure volumes never loads the provider (nor cryptography).
    from agent.providers.azure import AzureProvider

    return AzureProvider(
        name=context.name,
        # Ends its requests a little before the core's deadline, so its own error is reported.
        timeout=context.timeout * PLUGIN_DEADLINE_SHARE,
        trusted_dirs=context.trusted_dirs,
        service_accounts=context.service_accounts,
        default_cloud=context.options.get("azure_cloud_name") or "AzurePublicCloud",
        construct_pem_chain=context.options.get("azure_construct_pem_chain", "true") == "true",
        write_cert_and_key_in_separate_files=(
            context.options.get("azure_write_cert_and_key_in_separate_files") == "true"
        ),
    )


def _gcp(context: ProviderContext) -> Provider:
    # Imported here: aiohttp's Google clients, google-crc32c (and google-auth, should an SPC use
    # provider-adc or key.json) load only on a node that mounts a GCP volume.
    from agent.providers.gcp import GcpProvider

    return GcpProvider(
        name=context.name, timeout=context.timeout, service_accounts=context.service_accounts
    )


BUILTIN_FACTORIES: Mapping[str, ProviderFactory] = {
    "vault": LazyFactory("agent.providers.vault", _vault),
    "openbao": LazyFactory("agent.providers.vault", _vault),
    "aws": LazyFactory("agent.providers.aws", _aws),
    "azure": LazyFactory("agent.providers.azure", _azure),
    "gcp": LazyFactory("agent.providers.gcp", _gcp),
}
# The share of the core's deadline a provider that reports its own timeout (a plugin's
# retries, AWS, Azure) may use, so its error is reported before the core cancels the call.
PLUGIN_DEADLINE_SHARE = 0.95


def entry_point_factories(taken: Mapping[str, ProviderFactory]) -> dict[str, ProviderFactory]:
    """The factories of the installed entry points, except names in ``taken`` (logged, as is
    an entry point that fails to load; neither stops the agent)."""
    found: dict[str, ProviderFactory] = {}
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry.name in taken:
            log.warning("provider.entry_point_shadowed", provider=entry.name, value=entry.value)
            continue
        try:
            found[entry.name] = entry.load()
        except Exception as err:  # a broken plugin must not stop the agent serving the others
            log.error("provider.entry_point_failed", provider=entry.name, error=repr(err))
    return found
