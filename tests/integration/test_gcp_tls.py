"""https endpoints: the provider verifies Google's side against the system trust store, which
``SSL_CERT_FILE`` replaces (here a test CA that signed the fake's certificate)."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.errors import ProviderError
from tests.fakes.gcp import serve
from tests.support.gcp import PROJECT, GcpWorld, new_cloud
from tests.support.jwt_signer import JwtSigner

SECRET = [{"resourceName": "projects/proj-a/secrets/db/versions/1", "fileName": "pw"}]


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    signer: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(signer, hashes.SHA256())


@pytest.fixture
async def tls_world(jwt_signer: JwtSigner, tmp_path: Path) -> AsyncIterator[tuple[GcpWorld, Path]]:
    ca_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = _certificate("test CA", ca_key, ca_name, ca_key, ca=True)
    leaf = _certificate("127.0.0.1", leaf_key, ca_name, ca_key, ca=False)
    pem = serialization.Encoding.PEM
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(pem))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(pem))
    (tmp_path / "leaf.key").write_bytes(
        leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp_path / "leaf.pem", tmp_path / "leaf.key")
    async with serve(new_cloud(jwt_signer), server) as cloud:
        world = GcpWorld(cloud, jwt_signer)
        world.accounts.add("team-a", "web")
        cloud.state.add_secret_version(PROJECT, "db", b"pw")
        world.grant(PROJECT, "db")
        try:
            yield world, tmp_path / "ca.pem"
        finally:
            for provider in world.providers:
                await provider.close()


async def test_https_endpoints_trusted_through_ssl_cert_file(
    tls_world: tuple[GcpWorld, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    world, ca = tls_world
    assert world.cloud.url.startswith("https://")
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    result = await world.provider().mount(world.request(SECRET))
    assert result.files[0].contents == b"pw"


async def test_an_untrusted_certificate_is_refused(
    tls_world: tuple[GcpWorld, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    world, _ = tls_world
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    with pytest.raises(ProviderError, match=r"token exchange \(STS\) unreachable: TLS error"):
        await world.provider().mount(world.request(SECRET))
    assert world.cloud.requests == []
