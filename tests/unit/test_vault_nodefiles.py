"""Reading a mount's node files at check time, off the event loop, and the TLS context built
from those bytes."""

from __future__ import annotations

import os
import ssl
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from agent.errors import InvalidSecretProviderClass, ProviderError, ProviderUnavailable
from agent.model import PodIdentity, ProviderRequest, ServiceAccountToken
from agent.providers.common.trusted import TrustedDirs
from agent.providers.vault import VaultProvider, nodefiles, provider, transport
from agent.providers.vault.config import Defaults, parse_config
from agent.providers.vault.nodefiles import NodeFiles, TLSMaterial, read_node_files, ssl_context
from tests.support.openbao import self_signed_ca

OBJECTS = "- {objectName: p, secretPath: secret/data/app, secretKey: p}"


def read(trusted: TrustedDirs, **attributes: str) -> NodeFiles:
    attributes = {"roleName": "r", "objects": OBJECTS, **attributes}
    config = parse_config(attributes, "vault", Defaults("http://v"), trusted=trusted)
    return read_node_files(config, trusted)


def authorities(context: ssl.SSLContext | bool) -> list[str]:
    """The subjects (RFC 4514) of the CAs a context trusts."""
    assert isinstance(context, ssl.SSLContext)
    return [
        x509.load_der_x509_certificate(der).subject.rfc4514_string()
        for der in context.get_ca_certs(binary_form=True)
    ]


def test_the_bytes_read_at_check_time_are_the_bytes_used(tmp_path: Path) -> None:
    """The trust check used to resolve the path, and the TLS context to open it again later:
    a directory swapped for a symlink in between made the agent load a file outside."""
    (tmp_path / "trusted" / "sub").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "trusted" / "sub" / "ca.pem").write_text(self_signed_ca("inside")[0])
    (tmp_path / "outside" / "ca.pem").write_text(self_signed_ca("outside")[0])
    trusted = TrustedDirs([str(tmp_path / "trusted")])
    ca = str(tmp_path / "trusted" / "sub" / "ca.pem")
    files = read(trusted, vaultCACertPath=ca)
    # Someone who may write in the trusted directory swaps it after the check.
    os.rename(tmp_path / "trusted" / "sub", tmp_path / "trusted" / "sub.old")
    (tmp_path / "trusted" / "sub").symlink_to(tmp_path / "outside")
    assert authorities(ssl_context(files.tls)) == ["CN=inside"]
    with pytest.raises(InvalidSecretProviderClass, match=r"^vaultCACertPath: .* is outside"):
        read(trusted, vaultCACertPath=ca)  # and the next mount's check refuses it


def test_client_certificate_and_key_are_loaded_from_their_bytes(tmp_path: Path) -> None:
    cert, key = self_signed_ca("client")
    (tmp_path / "c.pem").write_text(cert)
    (tmp_path / "k.pem").write_text(key)
    (tmp_path / "other-k.pem").write_text(self_signed_ca("other")[1])
    trusted = TrustedDirs([str(tmp_path)])
    pair = {"vaultTLSClientCertPath": str(tmp_path / "c.pem")}
    files = read(trusted, **pair, vaultTLSClientKeyPath=str(tmp_path / "k.pem"))
    assert (files.tls.client_cert, files.tls.client_key) == (cert.encode(), key.encode())
    assert "BEGIN PRIVATE KEY" not in repr(files)
    assert isinstance(ssl_context(files.tls), ssl.SSLContext)
    files = read(trusted, **pair, vaultTLSClientKeyPath=str(tmp_path / "other-k.pem"))
    with pytest.raises(ProviderError, match=r"^cannot load the TLS files configured for Vault: "):
        ssl_context(files.tls)


def test_no_tls_files_means_the_system_trust_store() -> None:
    assert ssl_context(TLSMaterial()) is True
    context = ssl_context(TLSMaterial(skip_verify=True))
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_NONE


def test_only_regular_files_of_bounded_size_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    os.mkfifo(tmp_path / "fifo.pem")  # opening it for reading must not wait for a writer
    (tmp_path / "dir.pem").mkdir()
    (tmp_path / "big.pem").write_bytes(b"x" * 65)
    monkeypatch.setattr(nodefiles, "_MAX_FILE_BYTES", 64)
    trusted = TrustedDirs([str(tmp_path)])
    for name, problem in [
        ("fifo.pem", "not a regular file"),
        ("dir.pem", "not a regular file"),
        (
            "big.pem",
            "larger than 64 bytes, the fixed limit for a file read from --trusted-file-dirs",
        ),
        ("missing.pem", "No such file or directory"),
    ]:
        with pytest.raises(ProviderError) as info:
            read(trusted, vaultCACertPath=str(tmp_path / name))
        assert info.value.message == (
            f"cannot load the TLS files configured for Vault: vaultCACertPath: {problem}"
        )
    with pytest.raises(ProviderError, match=r"vaultCADirectory: no PEM certificates in '/"):
        read(trusted, vaultCADirectory=str(tmp_path / "dir.pem"))


async def test_node_files_are_read_and_tls_built_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Resolving and reading node files, and OpenSSL loading them, block: a slow disk must
    not stall every other mount and the CSI server with it."""
    (tmp_path / "ca.pem").write_text(self_signed_ca("ca")[0])
    threads: dict[str, int] = {}

    def spy(name: str, real: Any) -> Any:
        def call(*args: Any) -> Any:
            threads[name] = threading.get_ident()
            return real(*args)

        return call

    monkeypatch.setattr(provider, "read_node_files", spy("read", read_node_files))
    monkeypatch.setattr(transport, "ssl_context", spy("context", ssl_context))
    vault = VaultProvider(version_key=b"k" * 32, timeout=2, trusted_dirs=[str(tmp_path)], env={})
    attributes = {
        "roleName": "r",
        "objects": OBJECTS,
        "vaultAddress": "https://127.0.0.1:9",  # nothing listens: the mount fails after both
        "vaultCACertPath": str(tmp_path / "ca.pem"),
    }
    tokens = {"vault": ServiceAccountToken("jwt")}
    identity = PodIdentity(namespace="ns", name="pod", uid="u", service_account="sa", tokens=tokens)
    request = ProviderRequest(attributes, secrets={}, identity=identity, target_path="/tmp/unused")
    try:
        with pytest.raises(ProviderUnavailable):
            await vault.mount(request)
    finally:
        await vault.close()
    assert set(threads) == {"read", "context"}
    assert threading.get_ident() not in threads.values()
