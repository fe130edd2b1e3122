"""``serve``'s flags checked by a Windows node's rules (``parse_settings(windows=True)``), as the
chart's tests parse the Windows DaemonSet's flags on Linux."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.errors import ConfigError
from agent.flags import parse_settings

WINDOWS_NODE = [
    "--event-loop=asyncio",
    "--mount-mode=directory",
    "--endpoint=unix://C:\\csi\\csi.sock",
    "--kubelet-root-dir=C:\\var\\lib\\kubelet",
    "--provider-volume=C:\\k\\secrets-store-csi-providers",
    "--state-dir=C:\\k\\secrets-store-agent",
]


def test_a_windows_nodes_flags() -> None:
    settings, _ = parse_settings(
        [*WINDOWS_NODE, "--trusted-file-dirs=C:\\ca,D:/more"], windows=True
    )

    assert settings.event_loop == "asyncio"
    assert settings.kubelet_root_dir == "C:\\var\\lib\\kubelet"
    assert settings.trusted_file_dirs == ("C:\\ca", "D:/more")


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["--event-loop=uvloop"], "--event-loop: uvloop is not available on Windows"),
        (["--mount-mode=tmpfs"], "--mount-mode: tmpfs is not available on Windows"),
        (["--kubelet-root-dir=/var/lib/kubelet"], "--kubelet-root-dir"),
        (["--endpoint=unix:///csi/csi.sock"], "--endpoint"),
        (["--trusted-file-dirs=/etc/ca"], "--trusted-file-dirs: not absolute"),
        (["--trusted-file-dirs=C:\\"], "--trusted-file-dirs: a root"),
        (["--trusted-file-dirs=D:/"], "--trusted-file-dirs: a root"),
    ],
)
def test_linux_only_values_are_refused_naming_the_flag(argv: list[str], names: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings([*WINDOWS_NODE, *argv], windows=True)
    assert names in info.value.message


def test_linux_rules_still_refuse_a_root_and_drive_paths() -> None:
    for argv in (["--trusted-file-dirs=/"], ["--trusted-file-dirs=C:\\ca"]):
        with pytest.raises(ConfigError, match="--trusted-file-dirs"):
            parse_settings(argv, windows=False)


# The defaults are this machine's, fixed when agent.config is imported; a Windows node's are
# read by importing it in a child Python that believes it runs on Windows.
_WINDOWS_DEFAULTS = """
import asyncio, json, sys  # asyncio first: its Windows event loops do not import here
sys.platform = "win32"
from agent.flags import parse_settings
settings, _ = parse_settings([], windows=True)
print(json.dumps({
    "socket": settings.socket_path,
    "provider_volume": settings.provider_volume,
    "additional": settings.additional_provider_volume_paths,
    "kubelet_root_dir": settings.kubelet_root_dir,
    "mount_mode": settings.mount_mode,
    "event_loop": settings.event_loop,
}))
"""


def test_a_windows_nodes_defaults_are_upstreams_windows_values() -> None:
    """Upstream's Windows chart (§9): endpoint ``unix://C:\\\\csi\\\\csi.sock``, providers in
    ``C:\\k\\secrets-store-csi-providers`` and no additional directory, kubelet root
    ``C:\\var\\lib\\kubelet``; the volume is a directory, not a tmpfs."""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", _WINDOWS_DEFAULTS],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "socket": "C:\\csi\\csi.sock",
        "provider_volume": "C:\\k\\secrets-store-csi-providers",
        "additional": [],
        "kubelet_root_dir": "C:\\var\\lib\\kubelet",
        "mount_mode": "directory",
        "event_loop": "asyncio",
    }
