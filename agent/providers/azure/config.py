"""The parameters of an Azure SecretProviderClass, validated before any request.

Keys are those of the upstream provider (``types/parameters.go``), each value trimmed of
surrounding whitespace: ``keyvaultName``, ``tenantID`` (or the deprecated ``tenantId``),
``cloudName``, ``cloudEnvFileName``, ``clientID``, ``usePodIdentity``,
``useVMManagedIdentity``, ``userAssignedIdentityID``, ``useAzureTokenProxy`` and ``objects``.
Booleans are parsed as Go's ``strconv.ParseBool``. Messages name the parameter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from agent.errors import InvalidSecretProviderClass
from agent.providers.azure.identity import IdentityChoice
from agent.providers.azure.objects import KeyVaultObject, parse_objects
from agent.providers.common.gostrconv import parse_bool
from agent.providers.common.parameters import require_parameter

_VAULT_NAME = re.compile(r"^[-A-Za-z0-9]+$")
# azidentity's rule for tenant IDs; the tenant is a URL path segment of the token endpoint.
_TENANT = re.compile(r"^[0-9A-Za-z.-]+$")
_CLIENT_ID = re.compile(r"^[0-9A-Za-z._-]{1,128}$")

OBJECTS_SHAPE = "a YAML mapping whose 'array' lists objects"


@dataclass(frozen=True, slots=True)
class AzureConfig:
    keyvault_name: str
    tenant: str
    cloud_name: str  # as written; "" for the agent's default cloud
    cloud_env_file: str  # cloudEnvFileName, "" when not set
    identity: IdentityChoice
    objects: tuple[KeyVaultObject, ...]


def go_bool(attributes: Mapping[str, str], key: str) -> bool:
    value = attributes.get(key, "").strip()
    parsed = parse_bool(value) if value else False
    if parsed is None:
        raise InvalidSecretProviderClass(
            f"{key}: failed to parse {value!r} as a boolean (true/false)"
        )
    return parsed


def _identity(attributes: Mapping[str, str]) -> IdentityChoice:
    pod_identity = go_bool(attributes, "usePodIdentity")
    vm_identity = go_bool(attributes, "useVMManagedIdentity")
    token_proxy = go_bool(attributes, "useAzureTokenProxy")
    if pod_identity + vm_identity + token_proxy > 1:
        raise InvalidSecretProviderClass(
            "only one identity mode can be enabled at a time: usePodIdentity, "
            "useVMManagedIdentity, or useAzureTokenProxy"
        )
    if pod_identity:
        raise InvalidSecretProviderClass(
            "usePodIdentity: aad-pod-identity is retired and not supported; use workload "
            "identity instead: set clientID to the identity's client ID, federate it with the "
            "pod's service account, and list audience api://AzureADTokenExchange in the "
            "CSIDriver's tokenRequests"
        )
    if token_proxy:
        raise InvalidSecretProviderClass(
            "useAzureTokenProxy: AKS identity binding is not supported by this agent; use "
            "workload identity (clientID) instead"
        )
    client_id = attributes.get("clientID", "").strip()
    if client_id and not _CLIENT_ID.fullmatch(client_id):
        raise InvalidSecretProviderClass("clientID: not a valid client ID")
    return IdentityChoice(
        use_vm_managed_identity=vm_identity,
        user_assigned_identity_id=attributes.get("userAssignedIdentityID", "").strip(),
        client_id=client_id,
    )


def _tenant(attributes: Mapping[str, str]) -> str:
    tenant = attributes.get("tenantID", "").strip() or attributes.get("tenantId", "").strip()
    if not tenant:
        raise InvalidSecretProviderClass("tenantID is not provided")
    if not _TENANT.fullmatch(tenant):
        raise InvalidSecretProviderClass(
            "tenantID: a tenant ID holds only letters, digits, '-' and '.'"
        )
    return tenant


def _vault_name(attributes: Mapping[str, str]) -> str:
    name = attributes.get("keyvaultName", "").strip()
    if not name:
        raise InvalidSecretProviderClass("keyvaultName is not provided")
    if not 3 <= len(name) <= 24:
        raise InvalidSecretProviderClass(
            f"keyvaultName: invalid vault name {name!r}, must be between 3 and 24 chars"
        )
    if not _VAULT_NAME.fullmatch(name):
        raise InvalidSecretProviderClass(
            f"keyvaultName: invalid vault name {name!r}, must match [-a-zA-Z0-9]{{3,24}}"
        )
    return name


def parse_config(
    attributes: Mapping[str, str], objects: tuple[KeyVaultObject, ...] | None = None
) -> AzureConfig:
    """Everything the mount needs from the attributes; InvalidSecretProviderClass otherwise.

    ``objects``: :func:`objects_from` of the ``objects`` parameter, when the caller has it
    (the provider parses it through common.parsed: once per distinct text, off the event loop
    when large); parsed here otherwise. The other parameters take microseconds.
    """
    identity = _identity(attributes)
    keyvault_name = _vault_name(attributes)
    tenant = _tenant(attributes)
    text = objects_text(attributes)
    if not text:
        raise InvalidSecretProviderClass("objects is not set")
    user_assigned = identity.user_assigned_identity_id
    if user_assigned and not _CLIENT_ID.fullmatch(user_assigned):
        raise InvalidSecretProviderClass("userAssignedIdentityID: not a valid client ID")
    return AzureConfig(
        keyvault_name=keyvault_name,
        tenant=tenant,
        cloud_name=attributes.get("cloudName", "").strip(),
        cloud_env_file=attributes.get("cloudEnvFileName", "").strip(),
        identity=identity,
        objects=objects_from(text) if objects is None else objects,
    )


def objects_text(attributes: Mapping[str, str]) -> str:
    """The ``objects`` parameter as :func:`objects_from` takes it (trimmed)."""
    return require_parameter(attributes, "objects", OBJECTS_SHAPE).strip()


def objects_from(text: str) -> tuple[KeyVaultObject, ...]:
    """The (trimmed) ``objects`` parameter parsed; "" when unset is reported by parse_config."""
    return parse_objects(text) if text else ()
