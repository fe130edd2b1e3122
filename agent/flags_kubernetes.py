"""The flags of Kubernetes mode (``serve`` without ``--standalone-dir``) → Settings fields."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from agent.config import Settings, parse_duration
from agent.errors import ConfigError

_DEFAULTS = Settings()


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_kubernetes_flags(
    p: argparse.ArgumentParser, go_bool: Callable[[str, argparse.ArgumentParser], None]
) -> None:
    add = p.add_argument
    add("--kubeconfig", default="", help="kubeconfig path (in-cluster config when empty)")
    add(
        "--kube-api-qps",
        default=_DEFAULTS.kube_api_qps,
        type=float,
        help="client-side requests per second to the API, for each of the publish and the "
        "background lanes (0: unlimited)",
    )
    add("--kube-api-burst", default=_DEFAULTS.kube_api_burst, type=int, help="burst per lane")
    add(
        "--agent-namespace",
        default="",
        help="the agent's own namespace, for the HMAC key Secret "
        "(default: $POD_NAMESPACE, else the service account's namespace)",
    )
    add(
        "--hmac-secret-name",
        default=_DEFAULTS.hmac_secret_name,
        help="Secret holding the key behind Vault object versions (created if absent)",
    )
    go_bool("--token-request-fallback", p)
    add(
        "--pod-cleanup-grace-period",
        default=_DEFAULTS.pod_cleanup_grace_period,
        type=_duration,
        help="how long a gone pod's volume may stay mounted before the agent unmounts it",
    )
    add(
        "--cache-sync-timeout",
        default=_DEFAULTS.cache_sync_timeout,
        type=_duration,
        help="how long start waits for the API caches before serving anyway",
    )


def kubernetes_options(ns: argparse.Namespace) -> dict[str, Any]:
    """The Settings fields of these flags, checked; ConfigError names the flag at fault."""
    if ns.kube_api_qps < 0:
        raise ConfigError("--kube-api-qps must be 0 (unlimited) or more")
    if ns.kube_api_burst < 1:
        raise ConfigError("--kube-api-burst must be at least 1")
    return {
        "kubeconfig": ns.kubeconfig,
        "kube_api_qps": ns.kube_api_qps,
        "kube_api_burst": ns.kube_api_burst,
        "agent_namespace": ns.agent_namespace,
        "hmac_secret_name": ns.hmac_secret_name,
        "token_request_fallback": bool(ns.token_request_fallback),
        "pod_cleanup_grace_period": ns.pod_cleanup_grace_period,
        "cache_sync_timeout": ns.cache_sync_timeout,
    }
