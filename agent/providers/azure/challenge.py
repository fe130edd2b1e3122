"""Key Vault's authentication challenge: which token a vault wants, checked against its host.

A request without a token gets ``401`` with ``WWW-Authenticate: Bearer authorization="https://
login.microsoftonline.com/<tenant>", resource="https://vault.azure.net"`` (or ``scope=``). The
token is then requested for ``<resource>/.default``. Like the Azure SDKs (their "challenge
resource verification"), the resource's host must be a parent domain of the vault's host:
otherwise a server posing as a vault could make the agent fetch, and hand it, a token for
another Azure service. Learned scopes are kept per vault origin for the provider's lifetime,
so each vault costs one unauthenticated request per agent start.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from agent.errors import ProviderError

_PARAM = re.compile(r'([A-Za-z_]+)\s*=\s*(?:"([^"]*)"|([^\s,]+))')
DEFAULT_SUFFIX = "/.default"


def parse_bearer(header: str) -> dict[str, str]:
    """The parameters of the ``Bearer`` challenge in a WWW-Authenticate value (lower-case
    names); empty when there is none."""
    start = header.lower().find("bearer")
    if start < 0:
        return {}
    params: dict[str, str] = {}
    for match in _PARAM.finditer(header[start + len("bearer") :]):
        name = match.group(1).lower()
        params.setdefault(name, match.group(2) if match.group(2) is not None else match.group(3))
    return params


def scope_for(vault_url: str, header: str, service: str) -> str:
    """The token scope the vault at ``vault_url`` asks for in ``header``.

    Raises ProviderError when there is no usable challenge or its resource does not belong to
    the vault's domain. ``service`` names the vault in messages.
    """
    params = parse_bearer(header)
    scope = params.get("scope", "")
    resource = params.get("resource", "")
    if not scope and resource:
        scope = resource.rstrip("/") + DEFAULT_SUFFIX
    resource_host = urlsplit(scope).hostname or ""
    if not scope or not resource_host:
        raise ProviderError(
            f"{service} answered 401 without a usable Bearer challenge (no resource or scope)"
        )
    vault_host = (urlsplit(vault_url).hostname or "").lower()
    if not vault_host.endswith("." + resource_host.lower()):
        raise ProviderError(
            f"{service}: the challenge resource {resource_host!r} does not match the vault's "
            f"domain {vault_host!r}; the agent sends no token there (check keyvaultName and "
            "the cloud's keyVaultDNSSuffix)"
        )
    return scope


def origin(url: str) -> str:
    """``https://host[:port]``: the key a vault's challenge is kept under."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()
