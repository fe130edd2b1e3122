"""klog's command-line flags, accepted so a DaemonSet written for upstream starts unchanged.

Upstream calls ``klog.InitFlags``, so its binary takes ``--logtostderr``, ``--vmodule``,
``--log_dir`` and the rest beside its own flags (reference upstream-driver §1), and manifests
carry some of them. Here ``-v`` is the verbosity (agent/flags.py); the others are checked as
Go would parse them and have no effect: the agent always logs to stdout, as ``structlog``
lines (``--log-format-json`` picks the format).
"""

from __future__ import annotations

import argparse

from agent.flag_types import go_bool

_BOOLEANS = (
    "--logtostderr",
    "--alsologtostderr",
    "--add_dir_header",
    "--skip_headers",
    "--skip_log_headers",
    "--one_output",
    "--legacy_stderr_threshold_behavior",
)
_STRINGS = ("--vmodule", "--log_dir", "--log_file", "--log_backtrace_at")
KLOG_FLAGS = (*_BOOLEANS, *_STRINGS, "--log_file_max_size", "--stderrthreshold")
# klog's severities by name (case-insensitive) or number.
_SEVERITIES = ("INFO", "WARNING", "ERROR", "FATAL")


_UNUSED = "klog's; accepted for compatibility, no effect"


def add_klog_flags(p: argparse.ArgumentParser) -> None:
    for flag in _BOOLEANS:
        go_bool(flag, p, help=_UNUSED)
    for flag in _STRINGS:
        p.add_argument(flag, default="", help=_UNUSED)
    p.add_argument("--log_file_max_size", default=1800, type=_megabytes, help=_UNUSED)
    p.add_argument("--stderrthreshold", default="ERROR", type=_severity, help=_UNUSED)


def _megabytes(text: str) -> int:
    """Go's ``uint64`` flag: decimal digits only."""
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"invalid value {text!r} (a number of megabytes)")
    return int(text)


def _severity(text: str) -> str:
    """klog's ``severityValue``: a name or its number, 0 (INFO) to 3 (FATAL)."""
    name = text.upper()
    if name in _SEVERITIES:
        return name
    if text in ("0", "1", "2", "3"):
        return _SEVERITIES[int(text)]
    raise argparse.ArgumentTypeError(f"invalid value {text!r} (INFO, WARNING, ERROR, FATAL or 0-3)")
