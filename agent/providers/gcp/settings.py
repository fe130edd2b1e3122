"""Process-wide settings of the GCP provider, read once from the environment.

The upstream provider (GoogleCloudPlatform/secrets-store-csi-driver-provider-gcp) is configured
through its DaemonSet's environment; the same variables keep their meaning here, so a chart's
``env`` moves over unchanged:

==================================  ==========================================================
``GAIA_TOKEN_EXCHANGE_ENDPOINT``    token exchange (STS) URL; upstream's default
                                    ``https://securetoken.googleapis.com/v1/identitybindingtoken``
``GKE_WORKLOAD_IDENTITY_ENDPOINT``  prefix of the GKE identity provider name
                                    (default ``https://container.googleapis.com/v1``)
``PROJECT``, ``CLUSTER_NAME``,      the GKE workload identity pool and provider; from the GCE
``CLUSTER_LOCATION``                metadata server when unset
``GOOGLE_APPLICATION_CREDENTIALS``  an ``external_account`` file (fleet / workload identity
                                    federation audience); also the provider's own ADC
``ALLOW_NODE_PUBLISH_SECRET``       ``true`` lets a node-publish secret ``key.json`` authenticate
``GCE_METADATA_HOST``               the metadata server (Google's client libraries read it too)
==================================  ==========================================================

Upstream has no setting for the API endpoints themselves; private service endpoints (Private
Service Connect, a restricted VIP, a local proxy) are set with these agent settings:

======================================  ================================================
``GCP_SECRET_MANAGER_ENDPOINT``         default ``https://secretmanager.googleapis.com``
``GCP_SECRET_MANAGER_REGIONAL_ENDPOINT``  default ``https://secretmanager.{location}.rep.googleapis.com``
``GCP_PARAMETER_MANAGER_ENDPOINT``      default ``https://parametermanager.googleapis.com``
``GCP_PARAMETER_MANAGER_REGIONAL_ENDPOINT``  default ``https://parametermanager.{location}.rep.googleapis.com``
``GCP_IAM_CREDENTIALS_ENDPOINT``        default ``https://iamcredentials.googleapis.com``
======================================  ================================================

Every endpoint is ``https://``; plain ``http://`` only to a loopback host (a node-local proxy),
so no access token ever crosses the network in clear text. Bad values raise ConfigError naming
the variable when the provider is first used.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from agent.errors import ConfigError
from agent.providers.common.gostrconv import parse_bool

SECURETOKEN_URL = "https://securetoken.googleapis.com/v1/identitybindingtoken"
STS_URL = "https://sts.googleapis.com/v1/token"
GKE_IDENTITY_PROVIDER_PREFIX = "https://container.googleapis.com/v1"
METADATA_HOST = "169.254.169.254"  # what Google's Go metadata client uses when unset

_LOOPBACK_NAMES = frozenset({"localhost"})


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Base URLs without a trailing slash; regional ones hold a ``{location}`` placeholder."""

    secret_manager: str = "https://secretmanager.googleapis.com"  # noqa: S105 (a URL)
    secret_manager_regional: str = "https://secretmanager.{location}.rep.googleapis.com"  # noqa: S105
    parameter_manager: str = "https://parametermanager.googleapis.com"
    parameter_manager_regional: str = "https://parametermanager.{location}.rep.googleapis.com"
    iam_credentials: str = "https://iamcredentials.googleapis.com"
    # None: upstream's securetoken default, or STS for a plain federation audience (workload.py).
    token_exchange: str | None = None
    metadata: str = f"http://{METADATA_HOST}"


@dataclass(frozen=True, slots=True)
class GkeCluster:
    """What the environment says about the cluster; empty fields come from the metadata server."""

    project: str = ""
    name: str = ""
    location: str = ""
    identity_provider_prefix: str = GKE_IDENTITY_PROVIDER_PREFIX


@dataclass(frozen=True, slots=True)
class GcpSettings:
    endpoints: Endpoints = Endpoints()
    cluster: GkeCluster = GkeCluster()
    credentials_file: str = ""  # GOOGLE_APPLICATION_CREDENTIALS
    allow_node_publish_secret: bool = False


def load_settings(env: Mapping[str, str] | None = None) -> GcpSettings:
    """Read and check every setting; raise ConfigError naming the variable at fault."""
    environ = os.environ if env is None else env
    defaults = Endpoints()

    def endpoint(name: str, default: str, *, regional: bool = False) -> str:
        value = environ.get(name) or default
        return _check_url(name, value, regional=regional)

    exchange = environ.get("GAIA_TOKEN_EXCHANGE_ENDPOINT")
    endpoints = Endpoints(
        secret_manager=endpoint("GCP_SECRET_MANAGER_ENDPOINT", defaults.secret_manager),
        secret_manager_regional=endpoint(
            "GCP_SECRET_MANAGER_REGIONAL_ENDPOINT", defaults.secret_manager_regional, regional=True
        ),
        parameter_manager=endpoint("GCP_PARAMETER_MANAGER_ENDPOINT", defaults.parameter_manager),
        parameter_manager_regional=endpoint(
            "GCP_PARAMETER_MANAGER_REGIONAL_ENDPOINT",
            defaults.parameter_manager_regional,
            regional=True,
        ),
        iam_credentials=endpoint("GCP_IAM_CREDENTIALS_ENDPOINT", defaults.iam_credentials),
        token_exchange=_check_url("GAIA_TOKEN_EXCHANGE_ENDPOINT", exchange) if exchange else None,
        metadata=_metadata_url(environ.get("GCE_METADATA_HOST", "")),
    )
    cluster = GkeCluster(
        project=environ.get("PROJECT", ""),
        name=environ.get("CLUSTER_NAME", ""),
        location=environ.get("CLUSTER_LOCATION", ""),
        identity_provider_prefix=(
            environ.get("GKE_WORKLOAD_IDENTITY_ENDPOINT") or GKE_IDENTITY_PROVIDER_PREFIX
        ).rstrip("/"),
    )
    return GcpSettings(
        endpoints=endpoints,
        cluster=cluster,
        credentials_file=environ.get("GOOGLE_APPLICATION_CREDENTIALS", ""),
        allow_node_publish_secret=_strconv_bool(
            "ALLOW_NODE_PUBLISH_SECRET", environ.get("ALLOW_NODE_PUBLISH_SECRET", "false")
        ),
    )


def is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_token_url(source: str, url: str) -> str:
    """The same rule for a URL a credential file names (``token_uri``): https, or loopback http."""
    return _check_url(source, url)


def _check_url(name: str, value: str, *, regional: bool = False) -> str:
    probe = value.replace("{location}", "location") if regional else value
    try:
        parts = urlsplit(probe)
        host = parts.hostname or ""
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError as err:
        raise ConfigError(f"{name}: not a valid URL ({err})") from None
    if parts.scheme not in ("http", "https") or not host or parts.query or parts.fragment:
        raise ConfigError(f"{name}: must be an https:// URL without a query, got {value!r}")
    if parts.scheme == "http" and not is_loopback(host):
        raise ConfigError(
            f"{name}: plain http is only allowed to a loopback host (access tokens travel "
            "in it); use https://"
        )
    if regional and "{location}" not in value:
        raise ConfigError(f"{name}: must contain the placeholder {{location}}")
    if parts.username or parts.password:
        raise ConfigError(f"{name}: must not carry credentials")
    return value.rstrip("/")


def _metadata_url(host: str) -> str:
    """``GCE_METADATA_HOST`` is a host[:port], as in Google's client libraries."""
    host = host or METADATA_HOST
    if "/" in host or "@" in host:
        raise ConfigError("GCE_METADATA_HOST: must be a host or host:port, without a scheme")
    return f"http://{host}"


def _strconv_bool(name: str, value: str) -> bool:
    """Go's strconv.ParseBool spellings, as upstream reads its boolean variables."""
    parsed = parse_bool(value)
    if parsed is not None:
        return parsed
    raise ConfigError(f"{name}: must be true or false, got {value!r}")
