"""A throw-away CA and a server certificate for ``127.0.0.1``/``localhost`` (``cryptography``),
so the fake can serve HTTPS and a kubeconfig can carry ``certificate-authority``; and a client
certificate from the same CA, for a server that authenticates clients by certificate (as the
kube-apiserver does with ``--client-ca-file``)."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class ServerTls:
    ca_path: Path
    cert_path: Path
    key_path: Path
    client_cert_path: Path
    client_key_path: Path

    def server_context(self, require_client_cert: bool = False) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_path, self.key_path)
        if require_client_cert:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(self.ca_path)
        return context


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_server_tls(directory: Path) -> ServerTls:
    """Write ``ca.crt``, ``tls.crt``/``tls.key`` and ``client.crt``/``client.key`` (keys 0600)
    into ``directory``."""
    now = datetime.datetime.now(datetime.UTC)
    valid = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("fake-kube-api-ca"))
        .issuer_name(_name("fake-kube-api-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    server = _issue(
        ca, ca_key, "kube-apiserver", ExtendedKeyUsageOID.SERVER_AUTH, valid, names=names
    )
    client = _issue(ca, ca_key, "secrets-store-agent", ExtendedKeyUsageOID.CLIENT_AUTH, valid)
    directory.mkdir(parents=True, exist_ok=True)
    paths = ServerTls(
        directory / "ca.crt",
        directory / "tls.crt",
        directory / "tls.key",
        directory / "client.crt",
        directory / "client.key",
    )
    paths.ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for (cert, key), cert_path, key_path in (
        (server, paths.cert_path, paths.key_path),
        (client, paths.client_cert_path, paths.client_key_path),
    ):
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.touch(mode=0o600)
        key_path.write_bytes(_pem_key(key))
    return paths


def _issue(
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    common_name: str,
    usage: x509.ObjectIdentifier,
    valid: tuple[datetime.datetime, datetime.datetime],
    *,
    names: list[x509.GeneralName] | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key
