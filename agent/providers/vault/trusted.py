"""Which node files and sockets a SecretProviderClass may make the agent use.

Upstream's provider opens ``vaultCACertPath``, ``vaultTLSClientKeyPath``, a ``unix://`` Vault
address and the like inside its own container. This agent runs as root in the node's
filesystem, where the same parameter could name another pod's volume under
/var/lib/kubelet/pods or the container runtime's socket. So the operator lists the directories
that play the container's part (agent flag ``--trusted-file-dirs``, e.g. where the chart mounts
CA bundles or a Vault Agent socket), and a path is used only if it resolves inside one of them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import PurePosixPath

from agent.errors import ConfigError, InvalidSecretProviderClass

FLAG = "--trusted-file-dirs"


class TrustedDirs:
    """Absolute directories whose contents a SecretProviderClass may name; none by default."""

    def __init__(self, directories: Sequence[str] = ()) -> None:
        relative = [d for d in directories if not os.path.isabs(d)]
        if relative:
            raise ConfigError(f"{FLAG}: directories must be absolute paths, not {relative[0]!r}")
        self._shown = ", ".join(directories)
        # Resolved once, at start-up: a symlink replaced later cannot widen what is trusted.
        self._roots = tuple(PurePosixPath(os.path.realpath(d)) for d in directories)

    def resolve(self, key: str, path: str) -> str:
        """The real path of ``path`` if it lies inside a trusted directory, for the caller to
        open instead of ``path`` (so a symlink swapped after the check cannot redirect it).
        Otherwise raise InvalidSecretProviderClass naming the parameter ``key``."""
        if not self._roots:
            raise InvalidSecretProviderClass(
                f"{key}: the agent opens no node file or socket a SecretProviderClass names, "
                f"as no directory is trusted; the operator sets trusted directories with the "
                f"agent flag {FLAG}"
            )
        if not os.path.isabs(path):
            raise InvalidSecretProviderClass(f"{key}: must be an absolute path")
        if "\0" in path:
            raise InvalidSecretProviderClass(f"{key}: is not a valid path (NUL byte)")
        # realpath follows every symlink and "..": what is checked is what will be opened.
        # is_relative_to compares whole components, so /etc/ca does not admit /etc/ca-evil.
        real = os.path.realpath(path)
        if any(PurePosixPath(real).is_relative_to(root) for root in self._roots):
            return real
        # Quote the path as written, not where its symlinks lead: that would disclose node
        # layout to whoever reads the pod's events.
        raise InvalidSecretProviderClass(
            f"{key}: {path!r} is outside the directories the agent trusts for node files "
            f"({self._shown}); the operator sets them with the agent flag {FLAG}"
        )


NOTHING_TRUSTED = TrustedDirs()
