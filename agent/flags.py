"""The argparse definition of ``serve``'s flags (upstream names and defaults) → Settings.

The groups with a module of their own: flags_kubernetes.py, flags_rotation.py,
flags_providers.py and flags_klog.py; what they share is flag_types.py's.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from agent.config import (
    Settings,
    parse_listen_address,
    socket_path_from_endpoint,
)
from agent.errors import ConfigError
from agent.flag_types import DEFAULTS, duration, go_bool, size
from agent.flags_klog import add_klog_flags
from agent.flags_kubernetes import add_kubernetes_flags, kubernetes_options
from agent.flags_providers import add_provider_flags, provider_options
from agent.flags_rotation import add_rotation_flags, rotation_options
from agent.logs import DEBUG_LOGGERS_ENV, parse_debug_loggers
from agent.platform.runtime import EVENT_LOOPS
from agent.targets import make_target_rules


class _FlagParser(argparse.ArgumentParser):
    """argparse that raises ConfigError (naming the flag) instead of printing usage and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(message)


def build_parser(prog: str = "secrets-store-agent serve") -> argparse.ArgumentParser:
    """Every ``serve`` flag, group by group in ``--help``'s order."""
    p = _FlagParser(prog=prog, description="Run the Secrets Store CSI node agent.")
    _add_node_flags(p)
    add_rotation_flags(p)
    _add_process_flags(p)
    add_kubernetes_flags(p)
    _add_volume_flags(p)
    add_provider_flags(p)
    _add_path_flags(p)
    add_klog_flags(p)
    return p


def _add_node_flags(p: argparse.ArgumentParser) -> None:
    """The CSI socket, the node and driver names, where plugin sockets are, and where /metrics
    and the health endpoints listen."""
    add = p.add_argument
    add("--endpoint", default=DEFAULTS.endpoint, help="CSI endpoint (unix://PATH)")
    add("--nodeid", default=DEFAULTS.node_id, help="node name (NodeGetInfo, status labels)")
    add("--drivername", default=DEFAULTS.driver_name, help="CSI driver name")
    add("--provider-volume", default=DEFAULTS.provider_volume, help="provider socket directory")
    add(
        "--additional-provider-volume-paths",
        default=",".join(DEFAULTS.additional_provider_volume_paths),
        help="comma-separated extra provider socket directories, searched first",
    )
    add("--metrics-addr", default=DEFAULTS.metrics_addr, help="listen address for /metrics")
    add(
        "--health-addr",
        default=DEFAULTS.health_addr,
        help="listen address for /healthz and /readyz",
    )


def _add_process_flags(p: argparse.ArgumentParser) -> None:
    """The provider reply limit, logging, the plugin health check, ``--version`` and the
    flags kept for compatibility (pprof, metrics backend)."""
    add = p.add_argument
    add(
        "--max-call-recv-msg-size",
        default=DEFAULTS.max_call_recv_msg_size,
        type=int,
        help="largest provider response accepted, in bytes",
    )
    go_bool("--log-format-json", p)
    go_bool("--provider-health-check", p)
    add("--provider-health-check-interval", default=120.0, type=duration)
    go_bool("--version", p)
    add("-v", "--v", dest="verbosity", default=0, type=int, help="log verbosity (klog style)")
    add(
        "--debug-loggers",
        default=os.environ.get(DEBUG_LOGGERS_ENV, ""),
        help="comma-separated third-party loggers to log at DEBUG (e.g. hpack,h2,grpclib,"
        f"aiohttp); independent of -v; default ${DEBUG_LOGGERS_ENV}",
    )
    go_bool("--enable-pprof", p)
    add("--pprof-port", default=6065, type=int, help="accepted for compatibility; unused")
    add("--metrics-backend", default="Prometheus", help="only Prometheus is supported")


def _add_volume_flags(p: argparse.ArgumentParser) -> None:
    """The mode (standalone or Kubernetes), how volumes are mounted, the event loop, and the
    size and time limits of a publish and of the shutdown."""
    add = p.add_argument
    add(
        "--standalone-dir", default="", help="run without Kubernetes: SecretProviderClass YAML here"
    )
    add("--mount-mode", default=DEFAULTS.mount_mode, choices=("tmpfs", "directory"))
    add(
        "--event-loop",
        default=DEFAULTS.event_loop,
        choices=EVENT_LOOPS,
        help="uvloop (Linux default) or asyncio, the standard library's (Windows: always)",
    )
    add("--tmpfs-size", default=None, type=size, help="tmpfs size limit per volume (e.g. 64Mi)")
    add(
        "--provider-timeout",
        default=90.0,
        type=duration,
        help="deadline for one provider fetch (kept below kubelet's 2m)",
    )
    add(
        "--shutdown-grace",
        default=30.0,
        type=duration,
        help="how long SIGTERM waits for in-flight calls",
    )
    add(
        "--max-payload-size",
        default=None,
        type=size,
        help="largest volume content (default: 16Mi, or --max-call-recv-msg-size if larger)",
    )


def _add_path_flags(p: argparse.ArgumentParser) -> None:
    """Where the agent keeps its state and where kubelet's volumes are."""
    add = p.add_argument
    add("--state-dir", default=DEFAULTS.state_dir, help="node-local agent state (version key)")
    add(
        "--kubelet-root-dir",
        default=DEFAULTS.kubelet_root_dir,
        help="kubelet's --root-dir: volumes are published only at its "
        "pods/<uid>/volumes/kubernetes.io~csi/<volume>/mount paths",
    )


def normalise_go_flags(argv: Sequence[str], parser: argparse.ArgumentParser) -> list[str]:
    """Go accepts ``-flag`` for long flags; argparse needs ``--flag``."""
    long_flags = {
        s for action in parser._actions for s in action.option_strings if s.startswith("--")
    }
    result = []
    for arg in argv:
        name = arg.split("=", 1)[0]
        single_dash_long = arg.startswith("-") and not arg.startswith("--")
        result.append("-" + arg if single_dash_long and "-" + name in long_flags else arg)
    return result


def parse_settings(
    argv: Sequence[str], *, windows: bool = sys.platform == "win32"
) -> tuple[Settings, bool]:
    """Return (settings, print_version).

    ``windows``: check the flags by a Windows node's rules (this machine's by default; the
    chart's tests parse the Windows DaemonSet's flags on Linux). Defaults stay this machine's.
    """
    ns = _parse_namespace(argv)
    _check_flags(ns, windows=windows)
    settings = _settings(ns, windows=windows)
    # Validate early, naming --kubelet-root-dir and --endpoint.
    make_target_rules(settings.kubelet_root_dir, windows=windows)
    socket_path_from_endpoint(settings.endpoint, windows=windows)
    return settings, bool(ns.version)


def _parse_namespace(argv: Sequence[str]) -> argparse.Namespace:
    """``argv`` (Go's ``-flag`` spelling accepted) parsed; ConfigError for what argparse refuses."""
    parser = build_parser()
    try:
        return parser.parse_args(normalise_go_flags(argv, parser))
    except ValueError as err:  # raised by a type= converter without the flag's name
        raise ConfigError(str(err)) from None


def _check_flags(ns: argparse.Namespace, *, windows: bool) -> None:
    """The checks across this module's flags, in order; ConfigError names the flag at fault."""
    if ns.metrics_backend.lower() != "prometheus":
        raise ConfigError(
            f"--metrics-backend: unsupported backend {ns.metrics_backend!r} (only Prometheus)"
        )
    if ns.max_call_recv_msg_size <= 0:
        raise ConfigError("--max-call-recv-msg-size must be positive")
    if ns.provider_timeout <= 0 or ns.provider_timeout >= 120:
        raise ConfigError("--provider-timeout must be above 0 and below kubelet's 2m call timeout")
    if ns.tmpfs_size is not None and ns.tmpfs_size <= 0:
        raise ConfigError("--tmpfs-size must be positive")
    if ns.max_payload_size is not None and ns.max_payload_size <= 0:
        raise ConfigError("--max-payload-size must be positive")
    if ns.vault_address.startswith("unix://") and not ns.vault_address.startswith("unix:///"):
        raise ConfigError(
            "--vault-address: a unix socket needs an absolute path, unix:///run/x.sock"
        )
    for flag, value in (("--metrics-addr", ns.metrics_addr), ("--health-addr", ns.health_addr)):
        if value:
            try:
                parse_listen_address(value)
            except ConfigError as err:
                raise ConfigError(f"{flag}: {err.message}") from None
    if ns.mount_mode == "tmpfs" and windows:
        raise ConfigError("--mount-mode: tmpfs is not available on Windows; use directory")
    if ns.event_loop == "uvloop" and windows:
        raise ConfigError("--event-loop: uvloop is not available on Windows; use asyncio")


def _settings(ns: argparse.Namespace, *, windows: bool) -> Settings:
    """The Settings of ``ns``; each group's options check their own flags as they are read."""
    return Settings(
        endpoint=ns.endpoint,
        node_id=ns.nodeid,
        driver_name=ns.drivername,
        provider_volume=ns.provider_volume,
        additional_provider_volume_paths=tuple(
            p for p in ns.additional_provider_volume_paths.split(",") if p
        ),
        metrics_addr=ns.metrics_addr,
        health_addr=ns.health_addr,
        **rotation_options(ns),
        max_call_recv_msg_size=ns.max_call_recv_msg_size,
        log_format_json=bool(ns.log_format_json),
        verbosity=ns.verbosity,
        debug_loggers=parse_debug_loggers(ns.debug_loggers),
        provider_health_check=bool(ns.provider_health_check),
        provider_health_check_interval=ns.provider_health_check_interval,
        **kubernetes_options(ns),
        standalone_dir=ns.standalone_dir,
        mount_mode=ns.mount_mode,
        event_loop=ns.event_loop,
        tmpfs_size=ns.tmpfs_size,
        provider_timeout=ns.provider_timeout,
        shutdown_grace=ns.shutdown_grace,
        max_payload_bytes=ns.max_payload_size,
        **provider_options(ns, windows=windows),
        state_dir=ns.state_dir,
        kubelet_root_dir=ns.kubelet_root_dir,
    )
