"""Finds an upstream provider plugin's unix socket, by upstream's rules (reference §4.1).

A plugin DaemonSet (Azure, GCP, AWS, Akeyless, Conjur, ...) listens on ``<dir>/<provider>.sock``
where ``<provider>`` is ``SecretProviderClass.spec.provider``. The directories are tried in the
order the agent was given them: every ``--additional-provider-volume-paths`` entry, then
``--provider-volume``; the first socket file that exists wins.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from agent.errors import InvalidSecretProviderClass

# Upstream's PluginNameRe: the name becomes a file name, so nothing that could walk out of the
# directory ("../x", "a/b") or an absurdly long name ever reaches the filesystem.
PLUGIN_NAME = re.compile(r"^[a-zA-Z0-9_-]{0,30}$")


def check_plugin_name(name: str) -> None:
    """Raise for a provider name upstream would refuse as a socket name."""
    if not PLUGIN_NAME.fullmatch(name):
        shown = name if len(name) <= 64 else name[:64] + "..."
        raise InvalidSecretProviderClass(
            f"invalid provider: provider {shown!r} "
            "(spec.provider must match ^[a-zA-Z0-9_-]{0,30}$)"
        )


def socket_name(name: str) -> str:
    return f"{name}.sock"


def find_plugin_socket(name: str, directories: Iterable[str]) -> str | None:
    """Path of the first ``<dir>/<name>.sock`` that exists, or None when no directory has one.

    Nothing is cached: a plugin DaemonSet that starts after the agent is found on the next call.
    """
    check_plugin_name(name)
    filename = socket_name(name)
    for directory in directories:
        candidate = os.path.join(directory, filename)
        # Upstream only requires that os.Stat succeeds; a stale file is found too, and the
        # connection attempt then reports the plugin as unavailable.
        if os.path.exists(candidate):
            return candidate
    return None
