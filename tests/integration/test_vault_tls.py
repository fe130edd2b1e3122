"""TLS options against an OpenBao dev server with a generated CA (``bao server -dev-tls``)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.errors import AgentError, ProviderError, ProviderUnavailable
from agent.providers.vault import VaultClient, VaultProvider
from tests.support.jwt_signer import JwtSigner
from tests.support.openbao import OpenBaoServer, VaultWorld, build_world, self_signed_ca


@pytest.fixture(scope="module")
def world(openbao_tls: OpenBaoServer, jwt_signer: JwtSigner) -> VaultWorld:
    world = build_world(openbao_tls, jwt_signer)
    world.admin.kv_put(world.kv2, "team-a/app", {"password": "tls-secret"}, version=2)
    return world


@pytest.fixture
async def provider(openbao_tls: OpenBaoServer, tmp_path: Path) -> AsyncIterator[VaultProvider]:
    # The server's CA lives in its own temporary directory; tests put more files in tmp_path.
    trusted = [os.path.dirname(openbao_tls.ca_cert), str(tmp_path)]
    provider = VaultProvider(
        default_address=openbao_tls.address, version_key=b"k" * 32, timeout=5, trusted_dirs=trusted
    )
    yield provider
    await provider.close()


def objects(world: VaultWorld) -> list[dict[str, str]]:
    path = f"{world.kv2}/data/team-a/app"
    return [{"objectName": "p", "secretPath": path, "secretKey": "password"}]


async def read(provider: VaultProvider, world: VaultWorld, **attributes: str) -> bytes:
    result = await provider.mount(world.request(objects(world), attributes=attributes))
    return result.files[0].contents


async def test_ca_cert_path(world: VaultWorld, provider: VaultProvider) -> None:
    assert await read(provider, world, vaultCACertPath=world.server.ca_cert) == b"tls-secret"


async def test_ca_directory(world: VaultWorld, provider: VaultProvider, tmp_path: Path) -> None:
    shutil.copy(world.server.ca_cert, tmp_path / "ca.crt")
    (tmp_path / "README").write_text("not a certificate")
    assert await read(provider, world, vaultCADirectory=str(tmp_path)) == b"tls-secret"


async def test_untrusted_certificate_is_a_configuration_error(
    world: VaultWorld, provider: VaultProvider
) -> None:
    with pytest.raises(ProviderError) as info:
        await read(provider, world)
    assert not isinstance(info.value, ProviderUnavailable)
    assert "TLS error" in info.value.message


async def test_skip_verify(world: VaultWorld, provider: VaultProvider) -> None:
    assert await read(provider, world, vaultSkipTLSVerify="true") == b"tls-secret"


async def test_server_name(world: VaultWorld, provider: VaultProvider) -> None:
    ca = world.server.ca_cert
    # The certificate names localhost and 127.0.0.1, not this name.
    with pytest.raises(AgentError, match="TLS error"):
        await read(provider, world, vaultCACertPath=ca, vaultTLSServerName="vault.example")
    # An SNI/verification name the certificate does carry works with the IP address.
    assert await read(provider, world, vaultCACertPath=ca, vaultTLSServerName="localhost") == (
        b"tls-secret"
    )


async def test_missing_client_key_file(
    world: VaultWorld, provider: VaultProvider, tmp_path: Path
) -> None:
    with pytest.raises(ProviderError, match="cannot load the TLS files"):
        await read(
            provider,
            world,
            vaultCACertPath=world.server.ca_cert,
            vaultTLSClientCertPath=str(tmp_path / "client.pem"),
            vaultTLSClientKeyPath=str(tmp_path / "client-key.pem"),
        )


async def test_a_configmap_update_replaces_the_session(world: VaultWorld, tmp_path: Path) -> None:
    """A ConfigMap volume updates by pointing ``..data`` at a new timestamped directory: the
    path the SPC names stays, its content changes. The new CA is used, and the session built
    with the old one is closed rather than one more kept open per update."""
    client = VaultClient(timeout=5)
    provider = VaultProvider(
        default_address=world.server.address,
        version_key=b"k" * 32,
        client=client,
        trusted_dirs=[str(tmp_path)],
    )
    server_ca = Path(world.server.ca_cert).read_text()

    def update(version: str, pem: str) -> None:
        (tmp_path / version).mkdir()
        (tmp_path / version / "ca.crt").write_text(pem)
        # As kubelet's AtomicWriter does: a new link, renamed over the old one.
        (tmp_path / "..data_tmp").symlink_to(version)
        os.rename(tmp_path / "..data_tmp", tmp_path / "..data")

    update("..2026_01_01", server_ca)
    (tmp_path / "ca.crt").symlink_to("..data/ca.crt")
    ca = str(tmp_path / "ca.crt")
    try:
        assert await read(provider, world, vaultCACertPath=ca) == b"tls-secret"
        assert client.open_sessions() == 1
        update("..2026_01_02", self_signed_ca("not the server's CA")[0])
        with pytest.raises(ProviderError, match="TLS error"):
            await read(provider, world, vaultCACertPath=ca)
        assert client.open_sessions() == 1
        update("..2026_01_03", server_ca)
        assert await read(provider, world, vaultCACertPath=ca) == b"tls-secret"
        assert client.open_sessions() == 1
    finally:
        await provider.close()
    assert client.open_sessions() == 0
