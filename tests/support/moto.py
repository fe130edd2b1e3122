"""A real moto server (Secrets Manager, SSM Parameter Store, STS) for the AWS provider's tests.

Set ``SSA_TEST_MOTO_ADDR`` to use one that is already running (scripts/test starts one);
otherwise ``moto_server`` from the venv is started once per session. A missing moto fails the
tests: skipping would hide that nothing was tested. moto does not check credentials or
signatures, so authentication failures come from tests/fakes/aws_identity.py instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, NamedTuple

import pytest

from tests.support.openbao import free_port, self_signed_ca


class MotoServer(NamedTuple):
    address: str
    ca_cert: str = ""  # PEM of the CA that signed its certificate, for a TLS server

    def client(self, service: str, region: str = "us-east-1") -> Any:
        """A boto3 client for setting up a test (moto accepts any credentials)."""
        import boto3  # type: ignore[import-untyped]  # no stubs; the client is Any anyway

        return boto3.client(
            service,
            region_name=region,
            endpoint_url=self.address,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            verify=self.ca_cert or None,
        )


def find_moto() -> str:
    beside = Path(sys.executable).with_name("moto_server")
    found = str(beside) if beside.is_file() else shutil.which("moto_server")
    if found is None:
        pytest.fail("moto_server was not found: pip install 'moto[server]' (scripts/setup does)")
    return found


@contextlib.contextmanager
def moto_process(tls_dir: str | None = None) -> Iterator[MotoServer]:
    """Run ``moto_server`` on a free loopback port for the duration of the block."""
    port = free_port()
    command = [find_moto(), "-H", "127.0.0.1", "-p", str(port)]
    ca = ""
    if tls_dir is not None:
        ca, cert, key = _tls_files(tls_dir)
        command += ["-s", "-c", cert, "-k", key]
    scheme = "https" if tls_dir else "http"
    server = MotoServer(f"{scheme}://127.0.0.1:{port}", ca)
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_ready(process, server, log)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _tls_files(directory: str) -> tuple[str, str, str]:
    """A CA-signed certificate for 127.0.0.1 (moto's own -s certificate is not verifiable)."""
    ca_pem, ca_key = self_signed_ca("moto test CA")
    cert_pem, key_pem = server_certificate(ca_pem, ca_key, "127.0.0.1")
    paths = []
    for name, text in (("ca.pem", ca_pem), ("cert.pem", cert_pem + ca_pem), ("key.pem", key_pem)):
        path = os.path.join(directory, name)
        Path(path).write_text(text)
        paths.append(path)
    return paths[0], paths[1], paths[2]


def server_certificate(ca_pem: str, ca_key_pem: str, ip: str) -> tuple[str, str]:
    """(certificate, key) PEM for a server at ``ip``, signed by the given CA."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    ca = x509.load_pem_x509_certificate(ca_pem.encode())
    ca_key = serialization.load_pem_private_key(ca_key_pem.encode(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)  # as self_signed_ca makes them
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ip)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


def _wait_ready(process: subprocess.Popen[bytes], server: MotoServer, log: IO[bytes]) -> None:
    import ssl

    context = ssl.create_default_context(cafile=server.ca_cert) if server.ca_cert else None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            pytest.fail(f"moto_server exited early:\n{log.read().decode(errors='replace')}")
        try:
            url = f"{server.address}/moto-api/"
            with urllib.request.urlopen(url, timeout=1, context=context):  # noqa: S310
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail("moto_server did not answer within 30 seconds")


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    address = os.environ.get("SSA_TEST_MOTO_ADDR")
    if address:
        yield MotoServer(address.rstrip("/"))
        return
    with moto_process() as server:
        yield server


@pytest.fixture(scope="session")
def moto_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with moto_process(str(tmp_path_factory.mktemp("moto-tls"))) as server:
        yield server


def unique(prefix: str) -> str:
    """A secret or parameter name no other test uses on the shared server."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
