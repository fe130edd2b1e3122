"""The flags of Kubernetes mode (``serve`` without ``--standalone-dir``) → Settings fields."""

from __future__ import annotations

import argparse
from typing import Any

from agent.errors import ConfigError
from agent.flag_types import DEFAULTS, duration, go_bool


def add_kubernetes_flags(p: argparse.ArgumentParser) -> None:
    add = p.add_argument
    add("--kubeconfig", default="", help="kubeconfig path (in-cluster config when empty)")
    add(
        "--kube-api-qps",
        default=DEFAULTS.kube_api_qps,
        type=float,
        help="client-side requests per second to the API, for each of the publish and the "
        "background lanes (0: unlimited)",
    )
    add("--kube-api-burst", default=DEFAULTS.kube_api_burst, type=int, help="burst per lane")
    add(
        "--agent-namespace",
        default="",
        help="the agent's own namespace, for the HMAC key Secret "
        "(default: $POD_NAMESPACE, else the service account's namespace)",
    )
    add(
        "--hmac-secret-name",
        default=DEFAULTS.hmac_secret_name,
        help="Secret holding the key behind Vault object versions (created if absent)",
    )
    go_bool("--token-request-fallback", p)
    add(
        "--pod-cleanup-grace-period",
        default=DEFAULTS.pod_cleanup_grace_period,
        type=duration,
        help="how long a gone pod's volume may stay mounted before the agent unmounts it",
    )
    add(
        "--cache-sync-timeout",
        default=DEFAULTS.cache_sync_timeout,
        type=duration,
        help="how long start waits for the API caches before serving anyway",
    )
    add(
        "--secret-resync-interval",
        default=DEFAULTS.secret_resync_interval,
        type=duration,
        help="how often Secrets synced from secretObjects are checked against the mounted "
        "files (recreated if deleted; upstream requeues every 5m)",
    )


def kubernetes_options(ns: argparse.Namespace) -> dict[str, Any]:
    """The Settings fields of these flags, checked; ConfigError names the flag at fault."""
    if ns.kube_api_qps < 0:
        raise ConfigError("--kube-api-qps must be 0 (unlimited) or more")
    if ns.kube_api_burst < 1:
        raise ConfigError("--kube-api-burst must be at least 1")
    if ns.secret_resync_interval <= 0:
        raise ConfigError("--secret-resync-interval must be positive")
    return {
        "kubeconfig": ns.kubeconfig,
        "kube_api_qps": ns.kube_api_qps,
        "kube_api_burst": ns.kube_api_burst,
        "agent_namespace": ns.agent_namespace,
        "hmac_secret_name": ns.hmac_secret_name,
        "token_request_fallback": bool(ns.token_request_fallback),
        "pod_cleanup_grace_period": ns.pod_cleanup_grace_period,
        "cache_sync_timeout": ns.cache_sync_timeout,
        "secret_resync_interval": ns.secret_resync_interval,
    }
