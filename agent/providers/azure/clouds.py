"""Azure cloud environments: where a cloud's Key Vaults live and which Entra authority signs in.

Names and endpoints follow go-autorest's ``azure.EnvironmentFromName``, which the upstream
provider uses for ``cloudName``: case-insensitive, ``AzureCloud`` and ``AzureUSGovernment`` as
aliases, and ``AzureStackCloud`` read from the JSON file named by ``AZURE_ENVIRONMENT_FILEPATH``
(or the SecretProviderClass's ``cloudEnvFileName``), whose ``keyVaultDNSSuffix`` and
``activeDirectoryEndpoint`` the provider uses. Everything here is pure: reading the file is the
caller's job (off the event loop, through the trusted directories).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from agent.errors import InvalidSecretProviderClass

STACK_CLOUD = "AZURESTACKCLOUD"
ENVIRONMENT_FILE_VARIABLE = "AZURE_ENVIRONMENT_FILEPATH"
MAX_ENVIRONMENT_FILE_BYTES = 64 * 1024
# A DNS suffix (labels of 1-63 letters, digits and inner '-', RFC 1123), optionally with a
# port (Azure Stack Hub and private test clouds listen on one).
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DNS_SUFFIX = re.compile(rf"{_LABEL}(?:\.{_LABEL})*(?::(?P<port>[0-9]{{1,5}}))?")
_MAX_SUFFIX = 253


@dataclass(frozen=True, slots=True)
class Cloud:
    """One cloud: ``key_vault_dns_suffix`` (``vault.azure.net``) and ``authority``
    (``https://login.microsoftonline.com/``, Entra's sign-in host with a trailing slash)."""

    name: str
    key_vault_dns_suffix: str
    authority: str

    def vault_url(self, vault_name: str) -> str:
        """``https://<name>.<suffix>/``, built as upstream builds it."""
        return f"https://{vault_name}.{self.key_vault_dns_suffix}/"


_PUBLIC = Cloud("AzurePublicCloud", "vault.azure.net", "https://login.microsoftonline.com/")
_US_GOVERNMENT = Cloud(
    "AzureUSGovernmentCloud", "vault.usgovcloudapi.net", "https://login.microsoftonline.us/"
)
_CHINA = Cloud("AzureChinaCloud", "vault.azure.cn", "https://login.chinacloudapi.cn/")
# Retired in 2021 but still a name go-autorest accepts; kept so such an SPC fails at sign-in,
# as upstream does, rather than at parsing.
_GERMAN = Cloud("AzureGermanCloud", "vault.microsoftazure.de", "https://login.microsoftonline.de/")

NAMED_CLOUDS: dict[str, Cloud] = {
    "AZUREPUBLICCLOUD": _PUBLIC,
    "AZURECLOUD": _PUBLIC,
    "AZUREUSGOVERNMENTCLOUD": _US_GOVERNMENT,
    "AZUREUSGOVERNMENT": _US_GOVERNMENT,
    "AZURECHINACLOUD": _CHINA,
    "AZUREGERMANCLOUD": _GERMAN,
}
KNOWN_NAMES = (
    "AzurePublicCloud, AzureUSGovernmentCloud, AzureChinaCloud, AzureGermanCloud, AzureStackCloud"
)


def is_stack_cloud(name: str) -> bool:
    return name.upper() == STACK_CLOUD


def named_cloud(name: str, *, field: str = "cloudName") -> Cloud:
    """The built-in cloud called ``name`` (case-insensitive); InvalidSecretProviderClass names
    ``field`` otherwise. ``AzureStackCloud`` is not built in: see :func:`cloud_from_file`."""
    cloud = NAMED_CLOUDS.get(name.upper())
    if cloud is None:
        raise InvalidSecretProviderClass(
            f"{field}: unknown cloud {name!r}; use one of {KNOWN_NAMES}"
        )
    return cloud


def cloud_from_file(data: bytes, where: str) -> Cloud:
    """The custom cloud described by a go-autorest environment file (JSON).

    ``where`` names the file in messages (its setting and path, never its content). Raises
    InvalidSecretProviderClass when the JSON is invalid or lacks a usable
    ``keyVaultDNSSuffix`` / ``activeDirectoryEndpoint``.
    """
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
        raise InvalidSecretProviderClass(f"{where}: not a JSON cloud environment") from None
    if not isinstance(document, dict):
        raise InvalidSecretProviderClass(f"{where}: not a JSON object")
    suffix = document.get("keyVaultDNSSuffix")
    if not isinstance(suffix, str) or not _is_dns_suffix(suffix.strip()):
        raise InvalidSecretProviderClass(
            f"{where}: keyVaultDNSSuffix must be a DNS suffix such as vault.azure.net"
        )
    authority = document.get("activeDirectoryEndpoint")
    if not isinstance(authority, str) or not authority.strip():
        authority = ""  # AZURE_AUTHORITY_HOST may still supply it (checked by the caller)
    else:
        authority = normalise_authority(authority.strip(), f"{where}: activeDirectoryEndpoint")
    name = document.get("name")
    return Cloud(
        name if isinstance(name, str) and name else "AzureStackCloud",
        suffix.strip(),
        authority,
    )


def _is_dns_suffix(text: str) -> bool:
    """``vault.azure.net`` or ``vault.local:8443``: host name rules, a port from 1 to 65535."""
    match = _DNS_SUFFIX.fullmatch(text)
    if match is None or len(text.split(":", 1)[0]) > _MAX_SUFFIX:
        return False
    return match["port"] is None or 1 <= int(match["port"]) <= 65535


def normalise_authority(value: str, where: str) -> str:
    """An Entra authority host as ``https://host[:port]/`` (path kept, trailing slash added).

    Raises InvalidSecretProviderClass naming ``where`` unless it is an absolute https URL: the
    client's secret or the pod's token is posted there.
    """
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
        raise InvalidSecretProviderClass(
            f"{where}: must be an https URL such as https://login.microsoftonline.com/"
        )
    return value if value.endswith("/") else value + "/"
