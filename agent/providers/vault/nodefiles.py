"""The node files a mount uses, read when they are checked, and the TLS context built from them.

Both functions block (file reads; OpenSSL loading the system trust store): call them through
``agent.aio.threads.run_blocking``. The bytes read at check time are the bytes used, so a
symlink swapped after the check cannot make the agent load another file, and a ConfigMap update
shows as new bytes behind unchanged parameters, which the transport compares.
"""

from __future__ import annotations

import contextlib
import os
import ssl
from dataclasses import dataclass, field

from agent.errors import ProviderError
from agent.providers.common.trusted import TrustedDirs
from agent.providers.vault.config import NodePath, TLSConfig, VaultConfig

# A CA bundle of every public root is about 250 KiB; a file far larger is not a certificate.
_MAX_FILE_BYTES = 4 << 20
_PEM_CERTIFICATE = "-----BEGIN CERTIFICATE-----"


@dataclass(frozen=True, slots=True)
class TLSMaterial:
    """The contents of the TLS files a mount names."""

    skip_verify: bool = False
    cadata: str = ""  # PEM of the CA file and CA directory; "" trusts the system roots
    client_cert: bytes = b""
    client_key: bytes = field(default=b"", repr=False)


@dataclass(frozen=True, slots=True)
class NodeFiles:
    """What the trust check found for one mount."""

    socket: str = ""  # where to connect for a unix:// address: the socket's real path
    tls: TLSMaterial = TLSMaterial()


def names_node_files(config: VaultConfig) -> bool:
    """Whether ``config`` names a node path (a socket, a TLS file); without one
    :func:`read_node_files` touches no file and needs no worker thread."""
    tls = config.tls
    return config.socket is not None or any(
        (tls.ca_cert, tls.ca_directory, tls.client_cert, tls.client_key)
    )


def read_node_files(config: VaultConfig, trusted: TrustedDirs) -> NodeFiles:
    """Check the node paths ``config`` names against ``trusted`` and read its TLS files
    (even for a socket address, as Go's Vault client loads them whatever the address)."""
    socket = config.socket
    if socket is None:
        connect_to = ""
    elif socket.checked:
        connect_to = trusted.socket(socket.key, socket.path)
    else:
        connect_to = socket.path
    return NodeFiles(connect_to, _read_tls(config.tls, trusted))


def ssl_context(tls: TLSMaterial) -> ssl.SSLContext | bool:
    """The context for a TCP connection to Vault; True is aiohttp's default verification
    against the system trust store."""
    if not (tls.skip_verify or tls.cadata or tls.client_cert):
        return True
    try:
        # Like Go's Vault client, a configured CA replaces the system roots.
        context = ssl.create_default_context(cadata=tls.cadata or None)
        if tls.client_cert:
            _load_client_pair(context, tls)
    except (OSError, ssl.SSLError, ValueError) as err:
        raise _unloadable(f"{type(err).__name__}: {err}") from None
    if tls.skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _read_tls(tls: TLSConfig, trusted: TrustedDirs) -> TLSMaterial:
    pems = []
    if tls.ca_cert:
        pems.append(_text(_read(trusted, tls.ca_cert)))
    if tls.ca_directory:
        pems.append(_ca_directory(trusted, tls.ca_directory))
    return TLSMaterial(
        skip_verify=tls.skip_verify,
        cadata="\n".join(pems),
        client_cert=_read(trusted, tls.client_cert) if tls.client_cert else b"",
        client_key=_read(trusted, tls.client_key) if tls.client_key else b"",
    )


def _read(trusted: TrustedDirs, node: NodePath) -> bytes:
    try:
        return trusted.read_file(node.key, node.path, _MAX_FILE_BYTES)
    except OSError as err:
        raise _unloadable(f"{node.key}: {err.strerror or err}") from None


def _ca_directory(trusted: TrustedDirs, node: NodePath) -> str:
    """The PEM files of a directory, concatenated (Go reads them all; OpenSSL's capath would
    need c_rehash'd names)."""
    try:
        found = trusted.read_directory(node.key, node.path, _MAX_FILE_BYTES)
    except OSError as err:
        raise _unloadable(f"{node.key}: {err.strerror or err}") from None
    pems = [text for text in map(_text, found) if _PEM_CERTIFICATE in text]
    if not pems:
        raise _unloadable(f"{node.key}: no PEM certificates in {node.path!r}")
    return "\n".join(pems)


def _text(pem: bytes) -> str:
    # cadata must be ASCII; bundles carry UTF-8 comments ("# Issuer: ... Autorité") that
    # OpenSSL skips anyway.
    return pem.decode("ascii", errors="ignore")


def _load_client_pair(context: ssl.SSLContext, tls: TLSMaterial) -> None:
    """load_cert_chain takes only file names. The bytes go to anonymous memory files (memfd),
    named through /proc/self/fd: they never land on a disk or in a directory where another
    process could list or swap them, and vanish when closed."""
    with contextlib.ExitStack() as stack:
        names = []
        for label, data in (("vault-tls-cert", tls.client_cert), ("vault-tls-key", tls.client_key)):
            fd = os.memfd_create(label)
            stack.callback(os.close, fd)
            unwritten = memoryview(data)
            while unwritten:
                unwritten = unwritten[os.write(fd, unwritten) :]
            names.append(f"/proc/self/fd/{fd}")
        context.load_cert_chain(names[0], names[1])


def _unloadable(reason: str) -> ProviderError:
    return ProviderError(f"cannot load the TLS files configured for Vault: {reason}")
