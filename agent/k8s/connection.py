"""Where the API server is and how to authenticate: kubernetes_asyncio's own loaders.

Order, as controller-runtime (which the upstream driver uses): ``--kubeconfig``, then the
``KUBECONFIG`` environment variable (a ``:``-separated list), then the in-cluster service
account, then ``~/.kube/config``. Credentials that expire are refreshed before a request
needs them: the in-cluster token file and a kubeconfig ``tokenFile`` are re-read every
minute, trimmed (as client-go's cached file token source; kubernetes_asyncio's loaders read a
``tokenFile`` only once and keep a final newline), an exec plugin's token when its
``expirationTimestamp`` has passed (``agent.k8s.exec_plugin``: one run at a time, killed when
the request waiting for it gives up). The plugin's first run, at start, goes through the same
runner (``agent.k8s.kubeconfig_loader``): killed after FIRST_CREDENTIALS_S.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import structlog

from agent.errors import ConfigError
from agent.k8s.exec_plugin import ExecRefresher
from agent.k8s.header_credentials import RefusedCredential, read_token_file
from agent.k8s.kubeconfig_loader import KubeconfigLoader
from agent.k8s.lean_import import ConfigException, Configuration, incluster_config
from agent.log_redaction import scrub_text

log = structlog.get_logger(__name__)

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_FILE_REREAD_S = 60.0  # client-go's cached file token source
FIRST_CREDENTIALS_S = 60.0  # the kubeconfig's first credentials, at start


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
            source = "in-cluster service account"  # before: its errors name it too
            _in_cluster(configuration, environ)
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
        # The loaders' messages name files and fields; an exec plugin's quotes its stderr.
        detail = scrub_text(" ".join(str(err).split()))
        raise ConfigError(
            f"cannot load Kubernetes API configuration from {source}: {detail}"
        ) from err
    log.info("k8s.configured", source=source, host=configuration.host)
    return configuration


def _in_cluster(configuration: Configuration, environ: Mapping[str, str]) -> None:
    """The service account kubelet mounts. Its token is read as client-go reads it (spaces
    and a final newline trimmed: the loader keeps them, and aiohttp then refuses the header;
    ``agent.k8s.header_credentials``), and again every TOKEN_FILE_REREAD_S, keeping the last
    token while the file is unreadable (the loader's own hook would fail every request)."""
    token_path = SERVICE_ACCOUNT_DIR / "token"
    # Read first: the loader's own read would quote a byte of a file that is not UTF-8.
    token = read_token_file(token_path, f"the service account token file {token_path}")
    incluster_config.InClusterConfigLoader(
        token_filename=str(token_path),
        cert_filename=str(SERVICE_ACCOUNT_DIR / "ca.crt"),
        try_refresh_token=False,
        environ=dict(environ),
    ).load_and_set(configuration)
    configuration.api_key["BearerToken"] = f"Bearer {token}"
    configuration.refresh_api_key_hook = _token_file_refresher(token_path)


async def _from_kubeconfig(path: str, configuration: Configuration) -> None:
    loader = KubeconfigLoader.from_files(path)
    try:
        async with asyncio.timeout(FIRST_CREDENTIALS_S):  # an exec plugin that hangs
            await loader.load_and_set(configuration)
    except TimeoutError:
        plugin = loader.plugin  # killed and reaped by now (agent.k8s.exec_plugin)
        raise ConfigException(
            f'kubeconfig user "{plugin.user}": {plugin} gave no credentials within '
            f"{FIRST_CREDENTIALS_S:g} s (killed)"
            if plugin
            else f"no credentials within {FIRST_CREDENTIALS_S:g} s"
        ) from None
    user: Any = getattr(loader, "_user", None)
    if user is None or getattr(loader, "provider", None):
        return  # no user, or an auth-provider (gcp, oidc) the loader refreshes itself
    if token_file := loader.token_file():  # client-go's order: before the plugin (never run)
        configuration.refresh_api_key_hook = _token_file_refresher(token_file)
    elif loader.plugin and loader.credential and (token := loader.credential.token):
        expiry = loader.credential.expiry  # a certificate alone stays as it is: nothing to refresh
        configuration.refresh_api_key_hook = ExecRefresher(loader.plugin, token, expiry)


def _token_file_refresher(
    path: Path, clock: Callable[[], float] = time.monotonic
) -> Callable[[Configuration], None]:
    """Re-read ``path`` at most every TOKEN_FILE_REREAD_S; a file that cannot be read, or
    holds a token a header cannot carry, keeps the last token (as client-go keeps it when its
    file source fails), with one warning per attempt that names the file and the problem."""
    read_at = clock()

    def refresh(configuration: Configuration) -> None:
        nonlocal read_at
        if clock() - read_at < TOKEN_FILE_REREAD_S:
            return
        read_at = clock()
        try:
            token = read_token_file(path, str(path))
        except OSError as err:
            log.warning("k8s.token_file_unreadable", path=str(path), error=err.strerror)
            return
        except RefusedCredential as err:
            log.warning("k8s.token_file_refused", path=str(path), error=err.problem)
            return
        configuration.api_key["BearerToken"] = f"Bearer {token}"

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
