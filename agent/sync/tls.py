"""``kubernetes.io/tls`` Secret data from a mounted certificate file, as upstream splits it.

Upstream (``secretutil.GetCertPart``, §7): ``tls.crt`` is every ``CERTIFICATE`` block of the
PEM file, re-encoded; ``tls.key`` is the last block that is not a certificate, converted to
PKCS#1 ``RSA PRIVATE KEY`` or SEC1 ``EC PRIVATE KEY`` (PKCS#8 input accepted). A file with no
such block is read as PKCS#12 (PFX) with an empty password, the way Key Vault stores it.

Better than upstream, deliberately:
- a key that does not parse, or of another algorithm, is an error naming the field; upstream
  writes an empty ``PRIVATE KEY`` block into the Secret and reports success;
- certificates from a PFX carry no PEM headers: upstream copies the bag attributes
  (``localKeyId: …``) into the block, which OpenSSL-based servers refuse to read;
- any PFX cipher OpenSSL reads (AES as well as the legacy RC2/3DES upstream's decoder knows).

And one check fewer: an RSA key's internal consistency (Go's ``Validate``) is not verified; the
key is only re-encoded, and the check cost 36-47 ms per RSA-2048 key on every sync.

``cryptography`` is imported inside the functions that need it: an agent that never syncs a
private key never loads it. Callers run this in a worker thread (PKCS#12 key derivation is
CPU work).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.sync import pem

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
    from cryptography.hazmat.primitives.serialization.pkcs12 import PKCS12KeyAndCertificates

CERTIFICATE = "CERTIFICATE"
TLS_CERT_KEY = "tls.crt"
TLS_PRIVATE_KEY = "tls.key"


class TlsDataError(ValueError):
    """Why a file cannot give the requested part; the message holds no key material."""


def certificate_part(data: bytes) -> bytes:
    """``tls.crt``: the certificate chain as PEM."""
    blocks, rest = pem.decode_all(data)
    certificates = [block.der for block in blocks if block.type == CERTIFICATE]
    if not certificates:
        if blocks:
            raise TlsDataError("the file has no CERTIFICATE block")
        bundle = _load_pfx(rest)
        chain = ([bundle.cert] if bundle.cert else []) + list(bundle.additional_certs)
        if not chain:
            raise TlsDataError("the PKCS#12 (PFX) file holds no certificate")
        certificates = [_certificate_der(item.certificate) for item in chain]
    return b"".join(pem.encode(CERTIFICATE, der) for der in certificates)


def private_key_part(data: bytes) -> bytes:
    """``tls.key``: the private key as PKCS#1 (RSA) or SEC1 (EC) PEM."""
    blocks, rest = pem.decode_all(data)
    keys = [block for block in blocks if block.type != CERTIFICATE]
    if keys:
        key = _load_der_key(keys[-1])
    elif blocks:
        raise TlsDataError("the file has certificates but no private key block")
    else:
        bundle = _load_pfx(rest)
        if bundle.key is None:
            raise TlsDataError("the PKCS#12 (PFX) file holds no private key")
        key = bundle.key
    return _traditional_pem(key)


def _load_der_key(block: pem.PemBlock) -> PrivateKeyTypes:
    from cryptography.hazmat.primitives import serialization

    if block.type == "ENCRYPTED PRIVATE KEY" or block.has_headers:
        raise TlsDataError(f"the {block.type} block is encrypted (not supported)")
    try:
        # Only re-encoded, never used to sign: the RSA consistency check (about 35 ms for a
        # 2048-bit key, on every re-sync) buys nothing here.
        return serialization.load_der_private_key(
            block.der, password=None, unsafe_skip_rsa_key_validation=True
        )
    except (ValueError, TypeError, NotImplementedError):
        raise TlsDataError(
            f"the {block.type} block is not an RSA or EC private key in PKCS#1, PKCS#8 or SEC1 form"
        ) from None


def _traditional_pem(key: PrivateKeyTypes) -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if isinstance(key, rsa.RSAPrivateKey):
        block_type = "RSA PRIVATE KEY"
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        block_type = "EC PRIVATE KEY"
    else:
        raise TlsDataError(
            f"unsupported private key type {type(key).__name__.lstrip('_')}: "
            "only RSA and ECDSA are supported"
        )
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return pem.encode(block_type, der)


def _load_pfx(data: bytes) -> PKCS12KeyAndCertificates:
    from cryptography.hazmat.primitives.serialization import pkcs12

    if not data.strip():
        raise TlsDataError("the file holds no PEM block and is not a PKCS#12 (PFX) file")
    for password in (b"", None):
        try:
            return pkcs12.load_pkcs12(data, password)
        except (ValueError, TypeError):
            continue
    raise TlsDataError(
        "the file holds no PEM block and is not a PKCS#12 (PFX) file readable without a password"
    )


def _certificate_der(certificate: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return certificate.public_bytes(serialization.Encoding.DER)
