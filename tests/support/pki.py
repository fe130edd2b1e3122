"""Certificates for tests: a test CA for the fakes' TLS, and real chains (root, intermediate,
leaf, with Subject and Authority Key Identifiers) to store in a fake Key Vault as PKCS#12."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@dataclass
class Issued:
    key: PrivateKey = field(repr=False)
    certificate: x509.Certificate

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def issue(
    name: str,
    *,
    issuer: Issued | None = None,
    ca: bool = False,
    dns_names: tuple[str, ...] = (),
    key: PrivateKey | None = None,
    key_identifiers: bool = True,
) -> Issued:
    """A certificate for ``name``, signed by ``issuer`` (self-signed when None)."""
    key = key or ec_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if key_identifiers:
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
        signer_public = (issuer.key if issuer else key).public_key()
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_public), critical=False
        )
    if dns_names:
        sans = x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names])
        builder = builder.add_extension(sans, critical=False)
    signing_key = issuer.key if issuer else key
    return Issued(key, builder.sign(signing_key, hashes.SHA256()))


@dataclass
class Chain:
    root: Issued
    intermediate: Issued
    leaf: Issued


def chain(leaf_name: str = "app.example.com", *, rsa_leaf: bool = False) -> Chain:
    root = issue("Test Root CA", ca=True)
    intermediate = issue("Test Intermediate CA", issuer=root, ca=True)
    leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=2048) if rsa_leaf else None
    leaf = issue(leaf_name, issuer=intermediate, dns_names=(leaf_name,), key=leaf_key)
    return Chain(root, intermediate, leaf)


def pfx(
    key: PrivateKey | None, leaf: x509.Certificate | None, cas: list[x509.Certificate]
) -> bytes:
    """A PKCS#12 without a password, as Key Vault stores a certificate's secret."""
    return pkcs12.serialize_key_and_certificates(
        b"kv-cert", key, leaf, cas or None, serialization.NoEncryption()
    )


@dataclass
class ServerTLS:
    """A test CA and one server certificate for the fakes; files under ``directory``."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def server_tls(directory: Path, dns_names: tuple[str, ...]) -> ServerTLS:
    ca = issue("Agent Test CA", ca=True)
    server = issue(dns_names[0], issuer=ca, dns_names=dns_names)
    directory.mkdir(parents=True, exist_ok=True)
    paths = ServerTLS(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    paths.ca_file.write_bytes(ca.pem)
    paths.cert_file.write_bytes(server.pem)
    paths.key_file.write_bytes(server.key_pem)
    return paths
