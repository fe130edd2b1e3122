"""Command-line flags → Settings, with upstream's names, defaults and Go-style value syntax.

Upstream is a Go binary, so charts and scripts pass ``--flag=value``, ``-flag value``,
``--bool-flag`` or ``--bool-flag=false`` and durations like ``2m``; all of those work here.
Invalid values fail at start with a message naming the flag.
"""

from __future__ import annotations

import ntpath
import re
import sys
from dataclasses import dataclass

from agent.errors import ConfigError
from agent.platform.runtime import DEFAULT_EVENT_LOOP
from agent.targets import DEFAULT_KUBELET_ROOT, WINDOWS_KUBELET_ROOT

_ON_WINDOWS = sys.platform == "win32"

# Go's time.unitMap: nanoseconds per unit; "µs" is U+00B5 (micro sign), "μs" U+03BC (mu).
_NS_PER_UNIT = {
    "ns": 1,
    "us": 10**3,
    "µs": 10**3,
    "μs": 10**3,
    "ms": 10**6,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}
_NS_LIMIT = 1 << 63  # a Go Duration is int64 nanoseconds: every total must stay below this
_DURATION_EXAMPLES = "(examples: 90s, 2m, 1h30m)"
_SIZE = re.compile(r"^(\d+)(Ki|Mi|Gi|k|M|G)?$")
_SIZE_UNITS = {None: 1, "k": 10**3, "M": 10**6, "G": 10**9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
DEFAULT_MAX_PAYLOAD_BYTES = 16 * 1024 * 1024


def parse_duration(text: str) -> float:
    """Go's ``time.ParseDuration``, in seconds: ``0``, or ``[-+]?([0-9]*(\\.[0-9]*)?unit)+``
    with units ns, us (µs, μs), ms, s, m, h (``90s``, ``1h30m``, ``.5s``), exact to the
    nanosecond. As in Go, a duration past int64 nanoseconds (2562047h47m16.854775807s) is
    invalid. Unlike Go, a negative one is refused: every duration here is an interval or a
    timeout. Raises ValueError quoting ``text``; callers add the flag or annotation's name.
    """
    negative, body = (text[0] == "-", text[1:]) if text[:1] in ("-", "+") else (False, text)
    if body == "0":
        return 0.0
    if not body:
        raise ValueError(f"invalid duration {text!r} {_DURATION_EXAMPLES}")
    total, at = 0, 0
    while at < len(body):
        part, at = _duration_part_ns(text, body, at)
        total += part
        if total >= _NS_LIMIT:
            raise _too_long(text)
    if negative and total:
        raise ValueError(f"invalid duration {text!r}: must not be negative")
    return total / 1e9


def _duration_part_ns(text: str, body: str, at: int) -> tuple[int, int]:
    """One ``[0-9]*(\\.[0-9]*)?unit`` of ``body`` from ``at``: its nanoseconds, and where
    it ends. Go's arithmetic: an integer part, and a fraction scaled through a float64."""
    whole, end = _leading_int(text, body, at)
    has_whole, has_fraction, fraction, scale = end > at, False, 0, 1.0
    if end < len(body) and body[end] == ".":
        fraction, scale, after = _leading_fraction(body, end + 1)
        has_fraction, end = after > end + 1, after
    if not has_whole and not has_fraction:
        raise ValueError(f"invalid duration {text!r} {_DURATION_EXAMPLES}")
    unit_end = end
    while unit_end < len(body) and body[unit_end] != "." and not _is_digit(body[unit_end]):
        unit_end += 1
    unit = _NS_PER_UNIT.get(body[end:unit_end])
    if unit is None:
        name = body[end:unit_end]
        problem = f"unknown unit {name!r}" if name else "missing unit"
        raise ValueError(f"invalid duration {text!r}: {problem} {_DURATION_EXAMPLES}")
    if whole > _NS_LIMIT // unit:
        raise _too_long(text)
    return whole * unit + int(fraction * (unit / scale)), unit_end


def _leading_int(text: str, body: str, at: int) -> tuple[int, int]:
    value = 0
    while at < len(body) and _is_digit(body[at]):
        value = value * 10 + ord(body[at]) - 48
        if value > _NS_LIMIT:
            raise _too_long(text)
        at += 1
    return value, at


def _leading_fraction(body: str, at: int) -> tuple[int, float, int]:
    """Digits after the point as an integer and its scale; from the first digit that would
    take it past int64, the rest are read but dropped (Go's ``leadingFraction``)."""
    value, scale, full = 0, 1.0, False
    while at < len(body) and _is_digit(body[at]):
        if not full:
            widened = value * 10 + ord(body[at]) - 48
            full = value > (_NS_LIMIT - 1) // 10 or widened > _NS_LIMIT
            if not full:
                value, scale = widened, scale * 10
        at += 1
    return value, scale, at


def _is_digit(char: str) -> bool:
    return "0" <= char <= "9"


def _too_long(text: str) -> ValueError:
    return ValueError(
        f"invalid duration {text!r}: longer than 2562047h47m16.854775807s, "
        "the longest a Go duration can be"
    )


def parse_size(text: str) -> int:
    match = _SIZE.fullmatch(text)
    if not match:
        raise ValueError(f"invalid size {text!r} (examples: 64Mi, 1Gi, 1048576)")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2)]


def parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("0", "f", "false"):
        return False
    raise ValueError(f"invalid boolean {text!r} (use true or false)")


@dataclass(frozen=True, slots=True)
class Settings:
    # Upstream's Windows chart passes unix://C:\\csi\\csi.sock (backslashes doubled).
    endpoint: str = "unix://C:\\csi\\csi.sock" if _ON_WINDOWS else "unix://tmp/csi.sock"
    node_id: str = ""
    driver_name: str = "secrets-store.csi.k8s.io"
    provider_volume: str = (
        "C:\\k\\secrets-store-csi-providers"
        if _ON_WINDOWS
        else "/var/run/secrets-store-csi-providers"
    )
    additional_provider_volume_paths: tuple[str, ...] = (
        () if _ON_WINDOWS else ("/etc/kubernetes/secrets-store-csi-providers",)
    )
    metrics_addr: str = ":8095"
    health_addr: str = ":9808"
    enable_secret_rotation: bool = False
    rotation_poll_interval: float = 120.0
    # Floor for a SecretProviderClass's own interval and for refresh-now (docs/rotation.md).
    rotation_min_poll_interval: float = 10.0
    rotation_concurrency: int = 10  # provider fetches the scheduler runs at once
    max_call_recv_msg_size: int = 4 * 1024 * 1024
    log_format_json: bool = False
    verbosity: int = 0
    # Third-party stdlib loggers opened at DEBUG (--debug-loggers); -v never opens them.
    debug_loggers: tuple[str, ...] = ()
    provider_health_check: bool = False
    provider_health_check_interval: float = 120.0
    kubeconfig: str = ""
    kube_api_qps: float = 20.0
    kube_api_burst: int = 30
    agent_namespace: str = ""  # "": $POD_NAMESPACE, else the service account's namespace
    hmac_secret_name: str = "secrets-store-agent-hmac-key"  # noqa: S105 (a Secret name)
    token_request_fallback: bool = False
    pod_cleanup_grace_period: float = 120.0
    cache_sync_timeout: float = 10.0
    # How often synced Secrets are checked against the mounted files (upstream: 5 minutes).
    secret_resync_interval: float = 300.0
    standalone_dir: str = ""
    mount_mode: str = "directory" if _ON_WINDOWS else "tmpfs"
    event_loop: str = DEFAULT_EVENT_LOOP
    tmpfs_size: int | None = None
    provider_timeout: float = 90.0
    shutdown_grace: float = 30.0
    # --max-payload-size; None: follows the receive limit (see payload_limit).
    max_payload_bytes: int | None = None
    vault_address: str = ""
    # The upstream Azure provider's own flags (-cloud-name, -construct-pem-chain,
    # -write-cert-and-key-in-separate-files), prefixed since they now live in one agent.
    azure_cloud_name: str = "AzurePublicCloud"
    azure_construct_pem_chain: bool = True
    azure_write_cert_and_key_in_separate_files: bool = False
    trusted_file_dirs: tuple[str, ...] = ()
    state_dir: str = "C:\\k\\secrets-store-agent" if _ON_WINDOWS else "/var/run/secrets-store-agent"
    kubelet_root_dir: str = WINDOWS_KUBELET_ROOT if _ON_WINDOWS else DEFAULT_KUBELET_ROOT
    prefer_plugin_providers: tuple[str, ...] = ()
    # The built-in providers served in-process (--builtin-providers); any other name goes to an
    # upstream plugin socket. The chart derives it from providers.<name>.enabled.
    builtin_providers: tuple[str, ...] = ("vault", "openbao", "aws", "azure", "gcp")
    aws_pod_identity_endpoint: str = ""

    @property
    def payload_limit(self) -> int:
        """Largest volume content the writer accepts, in bytes.

        Upstream has no limit of its own past gRPC's receive limit, and raising
        ``--max-call-recv-msg-size`` is its documented remedy for large secrets; so unless
        ``--max-payload-size`` is given, the limit is 16 MiB or the receive limit if larger,
        and a reply the plugin client accepts is never refused by the writer.
        """
        if self.max_payload_bytes is not None:
            return self.max_payload_bytes
        return max(DEFAULT_MAX_PAYLOAD_BYTES, self.max_call_recv_msg_size)

    @property
    def socket_path(self) -> str:
        return socket_path_from_endpoint(self.endpoint)


MAX_SOCKET_PATH_BYTES = 107  # sockaddr_un.sun_path is 108 bytes with the terminating NUL
_DRIVE_PATH = re.compile(r"^/*([A-Za-z]:[\\/].*)$")


def socket_path_from_endpoint(endpoint: str, *, windows: bool = _ON_WINDOWS) -> str:
    r"""As upstream: ``unix:///csi/a.sock`` → ``/csi/a.sock``; ``unix://tmp/a`` → ``/tmp/a``.

    ``windows``: the path must be drive-absolute; ``unix://C:\\csi\\csi.sock`` (upstream's
    Windows chart, backslashes doubled), ``unix://C:\csi\csi.sock`` and
    ``unix:///C:/csi/csi.sock`` all give ``C:\csi\csi.sock``. UNC and device paths
    (``\\server\share``, ``\\?\C:\x``, ``\\.\pipe\x``) are refused: kubelet dials a file.
    """
    scheme, sep, rest = endpoint.partition("://")
    if not sep or scheme.lower() != "unix" or not rest:
        raise ConfigError(f"--endpoint: {endpoint!r} is not a unix:// endpoint")
    path = _windows_socket_path(endpoint, rest) if windows else "/" + rest.lstrip("/")
    if len(path.encode()) > MAX_SOCKET_PATH_BYTES:
        raise ConfigError(
            f"--endpoint: the socket path is {len(path.encode())} bytes; "
            f"unix sockets allow at most {MAX_SOCKET_PATH_BYTES}"
        )
    return path


def _windows_socket_path(endpoint: str, rest: str) -> str:
    match = _DRIVE_PATH.fullmatch(rest)
    if match is None or "\0" in rest:
        raise ConfigError(
            f"--endpoint: {endpoint!r} must name a socket by a drive-absolute path on Windows, "
            "like unix://C:\\csi\\csi.sock"
        )
    return ntpath.normpath(match.group(1))


def parse_listen_address(value: str) -> tuple[str, int]:
    """Parse Go's ``net.Listen`` forms: ``:8095``, ``host:8095``, ``[::1]:8095``.

    An empty host (``:8095``) is returned as ``""`` and means every interface, IPv4 and IPv6,
    as in Go; aiohttp's ``TCPSite`` is then given ``None``. Port 0 picks a free port.
    """
    host, sep, port_text = value.rpartition(":")
    if not sep:
        raise ConfigError(f"listen address {value!r} has no port; use host:port or :port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if not host:
            raise ConfigError(f"listen address {value!r} has empty brackets")
    elif ":" in host or "[" in host or "]" in host:
        raise ConfigError(f"listen address {value!r}: write IPv6 hosts in brackets, [::1]:8095")
    if not (port_text.isascii() and port_text.isdigit()) or int(port_text) > 65535:
        raise ConfigError(f"listen address {value!r} has an invalid port {port_text!r}")
    return host, int(port_text)
