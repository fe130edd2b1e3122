"""kubernetes.io/tls data as upstream's secretutil cuts it: PEM blocks found as Go's pem.Decode
finds them, tls.crt = every certificate, tls.key = the last key converted to PKCS#1 / SEC1,
PFX with an empty password; and the failures upstream turns into an empty key."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from agent.sync import pem
from agent.sync.tls import TlsDataError, certificate_part, private_key_part
from tests.support.pki import Chain, chain, issue, pfx


@pytest.fixture(scope="module")
def rsa_chain() -> Chain:
    return chain("rsa.example.com", rsa_leaf=True)


@pytest.fixture(scope="module")
def ec_chain() -> Chain:
    return chain("ec.example.com")


def _traditional(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _bundle(c: Chain) -> bytes:
    """A file as providers write one: leaf, intermediate, then the PKCS#8 key."""
    return c.leaf.pem + c.intermediate.pem + c.leaf.key_pem


def test_pem_certificate_chain_and_rsa_key_become_pkcs1(rsa_chain: Chain) -> None:
    data = _bundle(rsa_chain)
    assert certificate_part(data) == rsa_chain.leaf.pem + rsa_chain.intermediate.pem
    key = private_key_part(data)
    assert key.startswith(b"-----BEGIN RSA PRIVATE KEY-----\n")
    assert key == _traditional(rsa_chain.leaf.key)


def test_ec_key_becomes_sec1(ec_chain: Chain) -> None:
    key = private_key_part(_bundle(ec_chain))
    assert key.startswith(b"-----BEGIN EC PRIVATE KEY-----\n")
    assert key == _traditional(ec_chain.leaf.key)
    loaded = serialization.load_pem_private_key(key, None)
    assert isinstance(loaded, ec.EllipticCurvePrivateKey)


def test_keys_already_in_pkcs1_or_sec1_pass_through(rsa_chain: Chain, ec_chain: Chain) -> None:
    for c in (rsa_chain, ec_chain):
        traditional = _traditional(c.leaf.key)
        assert private_key_part(c.leaf.pem + traditional) == traditional


def test_pfx_with_empty_password_gives_chain_and_key(ec_chain: Chain) -> None:
    data = pfx(ec_chain.leaf.key, ec_chain.leaf.certificate, [ec_chain.intermediate.certificate])
    assert certificate_part(data) == ec_chain.leaf.pem + ec_chain.intermediate.pem
    assert private_key_part(data) == _traditional(ec_chain.leaf.key)
    # Upstream copies bag attributes into PEM headers ("localKeyId: ..."); OpenSSL cannot
    # read those, so none are written.
    assert b":" not in certificate_part(data).replace(b"-----", b"")


@pytest.mark.parametrize(
    "cipher",
    [
        [],  # OpenSSL 3's default: AES-256-CBC with PBKDF2, SHA-256 MAC
        ["-keypbe", "PBE-SHA1-3DES", "-certpbe", "PBE-SHA1-3DES", "-macalg", "sha1"],  # Windows
    ],
)
def test_pfx_exported_by_openssl_with_an_empty_password(
    rsa_chain: Chain, tmp_path: Path, cipher: list[str]
) -> None:
    (tmp_path / "key.pem").write_bytes(rsa_chain.leaf.key_pem)
    (tmp_path / "cert.pem").write_bytes(rsa_chain.leaf.pem + rsa_chain.intermediate.pem)
    out = tmp_path / "bundle.pfx"
    command = ["openssl", "pkcs12", "-export", "-inkey", "key.pem", "-in", "cert.pem"]
    subprocess.run(
        [*command, *cipher, "-passout", "pass:", "-out", str(out)], cwd=tmp_path, check=True
    )
    data = out.read_bytes()
    assert certificate_part(data) == rsa_chain.leaf.pem + rsa_chain.intermediate.pem
    assert private_key_part(data) == _traditional(rsa_chain.leaf.key)


def test_pfx_that_needs_a_password_is_refused(ec_chain: Chain) -> None:
    data = pkcs12.serialize_key_and_certificates(
        b"x",
        ec_chain.leaf.key,
        ec_chain.leaf.certificate,
        None,
        serialization.BestAvailableEncryption(b"secret-password"),
    )
    with pytest.raises(TlsDataError, match="without a password"):
        certificate_part(data)


def test_text_around_and_between_blocks_is_skipped_as_go_does(ec_chain: Chain) -> None:
    crlf = ec_chain.intermediate.pem.replace(b"\n", b"\r\n")
    data = b"subject=CN=leaf\nissuer=...\n" + ec_chain.leaf.pem + b"Bag Attributes\n" + crlf
    assert certificate_part(data) == ec_chain.leaf.pem + ec_chain.intermediate.pem


def test_a_broken_block_is_passed_over_and_the_search_goes_on(ec_chain: Chain) -> None:
    broken = b"-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n"
    unterminated_type = b"-----BEGIN CERTIFICATE\nxxx\n"
    data = unterminated_type + broken + ec_chain.leaf.pem
    assert certificate_part(data) == ec_chain.leaf.pem


def test_pem_reencodes_in_64_character_lines(ec_chain: Chain) -> None:
    der = ec_chain.leaf.der
    one_line = b"-----BEGIN CERTIFICATE-----\n" + base64.b64encode(der)
    one_line += b"\n-----END CERTIFICATE-----\n"
    assert certificate_part(one_line) == ec_chain.leaf.pem
    assert pem.encode("X", b"") == b"-----BEGIN X-----\n-----END X-----\n"


def test_the_last_key_block_wins(rsa_chain: Chain, ec_chain: Chain) -> None:
    data = rsa_chain.leaf.key_pem + ec_chain.leaf.pem + ec_chain.leaf.key_pem
    assert private_key_part(data) == _traditional(ec_chain.leaf.key)


def test_key_that_does_not_parse_is_an_error_not_an_empty_block(ec_chain: Chain) -> None:
    garbage = pem.encode("PRIVATE KEY", b"\x30\x03\x02\x01\x00")
    with pytest.raises(TlsDataError, match="not an RSA or EC private key"):
        private_key_part(ec_chain.leaf.pem + garbage)


def test_ed25519_key_is_refused_naming_the_type() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    pkcs8 = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(TlsDataError, match="only RSA and ECDSA"):
        private_key_part(pkcs8)


def test_encrypted_key_is_refused(ec_chain: Chain) -> None:
    encrypted = ec_chain.leaf.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    with pytest.raises(TlsDataError, match="encrypted"):
        private_key_part(ec_chain.leaf.pem + encrypted)


def test_missing_parts_are_named(ec_chain: Chain) -> None:
    with pytest.raises(TlsDataError, match="no private key"):
        private_key_part(ec_chain.leaf.pem)
    with pytest.raises(TlsDataError, match="no CERTIFICATE"):
        certificate_part(ec_chain.leaf.key_pem)
    with pytest.raises(TlsDataError, match="not a PKCS#12"):
        certificate_part(b"just some text\n")
    with pytest.raises(TlsDataError, match="not a PKCS#12"):
        private_key_part(b"")


def test_error_messages_never_carry_key_material(ec_chain: Chain) -> None:
    garbage = pem.encode("PRIVATE KEY", b"\x04\x20" + b"\x11" * 32)
    with pytest.raises(TlsDataError) as caught:
        private_key_part(garbage)
    body = garbage.split(b"\n")[1].decode()
    assert body not in str(caught.value)


def test_self_signed_certificate_only(ec_chain: Chain) -> None:
    single = issue("single.example.com")
    assert certificate_part(single.pem + single.key_pem) == single.pem
    parsed = x509.load_pem_x509_certificates(certificate_part(_bundle(ec_chain)))
    assert [c.subject for c in parsed] == [
        ec_chain.leaf.certificate.subject,
        ec_chain.intermediate.certificate.subject,
    ]
