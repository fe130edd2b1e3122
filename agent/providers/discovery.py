"""Finds an upstream provider plugin's unix socket, by upstream's rules (reference §4.1).

A plugin DaemonSet (Azure, GCP, AWS, Akeyless, Conjur, ...) listens on ``<dir>/<provider>.sock``
where ``<provider>`` is ``SecretProviderClass.spec.provider``. The directories are tried in the
order the agent was given them: every ``--additional-provider-volume-paths`` entry, then
``--provider-volume``; the first socket file that exists wins.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable

import structlog

from agent.errors import InvalidSecretProviderClass

log = structlog.get_logger("agent.providers")

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


def installed_plugin_names(directories: Iterable[str]) -> list[str]:
    """The provider names with a ``<name>.sock`` socket in ``directories`` (blocking: lists
    them), in order, each once; files that are not sockets or whose name upstream would refuse
    are left out."""
    found: dict[str, None] = {}
    for directory in directories:
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in sorted(entries, key=lambda e: e.name):
            name = entry.name.removesuffix(".sock")
            if name == entry.name or not PLUGIN_NAME.fullmatch(name) or not name:
                continue
            try:
                if stat.S_ISSOCK(entry.stat(follow_symlinks=False).st_mode):
                    found[name] = None
            except OSError:
                continue
    return list(found)


def writable_by_others(directory: str) -> str:
    """Who besides the directory's owner may create files in it: "group", "others", "group
    and others", or "" (also when it cannot be read). Whoever may can plant ``<name>.sock``
    there and receive every mount request for that name, service-account tokens included."""
    try:
        mode = os.stat(directory).st_mode
    except OSError:
        return ""
    who = [name for bit, name in ((stat.S_IWGRP, "group"), (stat.S_IWOTH, "others")) if mode & bit]
    return " and ".join(who)


class SocketDirectories:
    """Warns, once per directory, when a plugin socket is found where others than the
    directory's owner may create files (upstream checks nothing)."""

    def __init__(self) -> None:
        self._checked: set[str] = set()

    def check(self, name: str, socket: str) -> None:
        directory = os.path.dirname(socket)
        if directory in self._checked:
            return
        self._checked.add(directory)
        who = writable_by_others(directory)
        if who:
            log.warning(
                "provider.socket_directory_writable",
                provider=name,
                directory=directory,
                writable_by=who,
                risk="whoever can write there can plant <provider>.sock and receive pod tokens",
            )
