"""Which node files and sockets a SecretProviderClass may make the agent use.

Upstream's providers open ``vaultCACertPath``, ``vaultTLSClientKeyPath``, a ``unix://`` Vault
address, Azure's ``cloudEnvFileName`` and the like inside their own containers. This agent runs
as root in the node's filesystem, where the same parameter could name another pod's volume under
/var/lib/kubelet/pods or the container runtime's socket. So the operator lists the directories
that play the container's part (agent flag ``--trusted-file-dirs``, e.g. where the chart mounts
CA bundles or a Vault Agent socket), and a path is used only if it lies inside one of them.

Files are read here, by a walk that cannot leave the trusted directory (beneath.py), and only
their bytes are used afterwards: nothing is opened again by name once it has been checked.
Everything but ``check`` touches the file system: call it through run_blocking.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import PurePosixPath

from agent.errors import ConfigError, InvalidSecretProviderClass
from agent.providers.common.beneath import (
    Escape,
    NotRegularFile,
    list_beneath,
    read_beneath,
)

FLAG = "--trusted-file-dirs"


class TrustedDirs:
    """Absolute directories whose contents a SecretProviderClass may name; none by default."""

    def __init__(self, directories: Sequence[str] = ()) -> None:
        relative = [d for d in directories if not os.path.isabs(d)]
        if relative:
            raise ConfigError(f"{FLAG}: directories must be absolute paths, not {relative[0]!r}")
        self._shown = ", ".join(directories)
        # Each as configured and as resolved once, at start-up: a symlink replaced later cannot
        # widen what is trusted. Files are opened beneath the resolved one.
        self._roots = tuple(
            (PurePosixPath(d), PurePosixPath(os.path.realpath(d))) for d in directories
        )

    def check(self, key: str, path: str) -> None:
        """Refuse, without touching the file system, a path no trusted directory can admit."""
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

    def socket(self, key: str, path: str) -> str:
        """The real path of the socket ``path``, to connect to, if it lies in a trusted
        directory. Unlike a file's bytes, a connection cannot be made ahead at check time: each
        new connection goes by this path, so whoever may write inside the trusted directory
        could still swap one of its directories for a symlink in between."""
        self.check(key, path)
        real = PurePosixPath(os.path.realpath(path))
        # is_relative_to compares whole components, so /etc/ca does not admit /etc/ca-evil.
        if any(real.is_relative_to(root) for _, root in self._roots):
            return str(real)
        raise self._outside(key, path)

    def read_file(self, key: str, path: str, limit: int) -> bytes:
        """The bytes of the file ``path``, read beneath the trusted directory it lies in."""
        root, relative = self._locate(key, path)
        try:
            return read_beneath(root, relative, limit)
        except Escape:
            raise self._outside(key, path) from None

    def read_directory(self, key: str, path: str, limit: int) -> list[bytes]:
        """The bytes of each regular file in the directory ``path``, by name; subdirectories
        (such as a ConfigMap volume's ``..data``) and files that vanish meanwhile are skipped."""
        root, relative = self._locate(key, path)
        try:
            names = sorted(list_beneath(root, relative))
        except Escape:
            raise self._outside(key, path) from None
        found = []
        for name in names:
            try:
                found.append(read_beneath(root, f"{relative}/{name}", limit))
            except (NotRegularFile, FileNotFoundError):
                continue
            except Escape:
                raise self._outside(key, f"{path.rstrip('/')}/{name}") from None
        return found

    def _locate(self, key: str, path: str) -> tuple[str, str]:
        """(the real trusted directory, the path relative to it) for ``path``."""
        self.check(key, path)
        written = PurePosixPath(path)
        for configured, real in self._roots:
            for spelling in (configured, real):
                if written.is_relative_to(spelling):
                    # Its ".." and symlinks are left to the walk, which keeps them inside.
                    return str(real), str(written.relative_to(spelling))
        # Written through a symlink outside the trusted dirs (/var/run for /run, say): where it
        # leads picks the directory; the walk then still opens it beneath that directory.
        landed = PurePosixPath(os.path.realpath(path))
        for _, real in self._roots:
            if landed.is_relative_to(real):
                return str(real), str(landed.relative_to(real))
        raise self._outside(key, path)

    def _outside(self, key: str, path: str) -> InvalidSecretProviderClass:
        # Quote the path as written, not where its symlinks lead: that would disclose node
        # layout to whoever reads the pod's events.
        return InvalidSecretProviderClass(
            f"{key}: {path!r} is outside the directories the agent trusts for node files "
            f"({self._shown}); the operator sets them with the agent flag {FLAG}"
        )


NOTHING_TRUSTED = TrustedDirs()
