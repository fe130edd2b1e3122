"""Where the API server is and how to authenticate: kubernetes_asyncio's own loaders.

Order, as controller-runtime (which the upstream driver uses): ``--kubeconfig``, then the
``KUBECONFIG`` environment variable (a ``:``-separated list), then the in-cluster service
account, then ``~/.kube/config``. Credentials that expire are refreshed before a request
needs them: the in-cluster token file is re-read every minute (the loader's hook), an exec
plugin's token when its ``expirationTimestamp`` has passed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from agent.errors import ConfigError
from agent.k8s.lean_import import ConfigException, Configuration, incluster_config, kube_config

log = structlog.get_logger(__name__)

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
_EXPIRY_MARGIN = timedelta(seconds=10)


async def load_configuration(
    kubeconfig: str = "", environ: Mapping[str, str] = os.environ
) -> Configuration:
    """A ready Configuration, or ConfigError saying which source failed and why."""
    configuration = Configuration()
    source = kubeconfig or environ.get("KUBECONFIG", "")
    try:
        if source:
            await _from_kubeconfig(source, configuration)
        elif environ.get(incluster_config.SERVICE_HOST_ENV_NAME):
            incluster_config.InClusterConfigLoader(
                token_filename=str(SERVICE_ACCOUNT_DIR / "token"),
                cert_filename=str(SERVICE_ACCOUNT_DIR / "ca.crt"),
                environ=dict(environ),
            ).load_and_set(configuration)
            source = "in-cluster service account"
        elif (Path.home() / ".kube" / "config").is_file():
            source = str(Path.home() / ".kube" / "config")
            await _from_kubeconfig(source, configuration)
        else:
            raise ConfigError(
                "no Kubernetes API configuration: not running in a cluster "
                "(KUBERNETES_SERVICE_HOST is unset), and neither --kubeconfig, KUBECONFIG nor "
                "~/.kube/config is set; pass --standalone-dir to run without Kubernetes"
            )
    except (ConfigException, OSError, ValueError, KeyError, TypeError) as err:
        # The loaders' messages name files and fields, not credentials.
        raise ConfigError(f"cannot load Kubernetes API configuration from {source}: {err}") from err
    log.info("k8s.configured", source=source, host=configuration.host)
    return configuration


async def _from_kubeconfig(path: str, configuration: Configuration) -> None:
    loader = await kube_config.load_kube_config(
        config_file=path, client_configuration=configuration, persist_config=False
    )
    user: Any = getattr(loader, "_user", None)
    if user is not None and "exec" in user:
        configuration.refresh_api_key_hook = _exec_refresher(loader)


def _exec_refresher(loader: Any) -> Any:
    async def refresh(configuration: Configuration) -> None:
        expiry = getattr(loader, "exec_plugin_expiry", None)
        # Without an expiry the plugin's token is kept, as client-go does until a 401.
        if expiry is None or datetime.now(UTC) + _EXPIRY_MARGIN < expiry:
            return
        await loader.load_from_exec_plugin()
        configuration.api_key["BearerToken"] = loader.token

    return refresh


def own_namespace(environ: Mapping[str, str] = os.environ) -> str:
    """The namespace the agent runs in: ``POD_NAMESPACE`` (the chart sets it from the downward
    API), else the service account's namespace file, else ``default``."""
    if environ.get("POD_NAMESPACE"):
        return environ["POD_NAMESPACE"]
    try:
        return (SERVICE_ACCOUNT_DIR / "namespace").read_text().strip() or "default"
    except OSError:
        return "default"
