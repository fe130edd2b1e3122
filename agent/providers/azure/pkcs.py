"""Conversions that need cryptography: PKCS#12 to PEM, chain ordering, JWK public keys to PEM.

Imported only when a volume holds a certificate-backed secret or a key, and called in a worker
thread (PKCS#12 key derivation is CPU work). Output matches the upstream Azure provider:

- PKCS#12 (no password, as Key Vault stores it): every private key as a PKCS#8 "PRIVATE KEY"
  block first, then the certificates; with chain construction on (upstream's
  ``--construct-pem-chain``, default true) the certificates are ordered leaf, intermediates,
  root by matching each one's Authority Key Identifier to another's Subject Key Identifier. If
  that does not link every certificate, the order is left as found (upstream logs a warning).
- JWK: RSA / RSA-HSM and EC / EC-HSM on P-256, P-384, P-521, as a PKIX "PUBLIC KEY" block.
"""

from __future__ import annotations

import base64
import contextlib
import re
from dataclasses import dataclass
from typing import Any

import structlog
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from agent.errors import ProviderError
from agent.providers.azure.content import CERTIFICATE_BLOCK, pem_block, std_base64
from agent.providers.azure.objects import KeyVaultObject

log = structlog.get_logger(__name__)

_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
_CURVES: dict[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(),
    "P-384": ec.SECP384R1(),
    "P-521": ec.SECP521R1(),
}


def pfx_to_pem(obj: KeyVaultObject, value: str, *, construct_chain: bool) -> str:
    """The base64 PKCS#12 ``value`` as PEM: key, then certificates. ProviderError otherwise."""
    try:
        der = std_base64(value)
    except ValueError:
        raise ProviderError(f"{obj.describe()}: the PKCS#12 value is not base64") from None
    try:
        bundle = pkcs12.load_pkcs12(der, None)
    except ValueError:
        raise ProviderError(
            f"{obj.describe()}: the PKCS#12 value cannot be read without a password"
        ) from None
    key_pem = ""
    if bundle.key is not None:
        key_pem = bundle.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")
    # The key's own certificate first, then the others as stored.
    certificates = [c.certificate for c in ([bundle.cert] if bundle.cert else [])]
    certificates += [c.certificate for c in bundle.additional_certs]
    if construct_chain and certificates:
        certificates = leaf_to_root(obj, certificates)
    der_blocks = (c.public_bytes(serialization.Encoding.DER) for c in certificates)
    return key_pem + "".join(pem_block(CERTIFICATE_BLOCK, der) for der in der_blocks)


@dataclass(slots=True)
class _Node:
    certificate: x509.Certificate
    authority_key_id: bytes | None
    subject_key_id: bytes | None
    parent: int | None = None
    is_parent: bool = False


def _key_ids(certificate: x509.Certificate) -> tuple[bytes | None, bytes | None]:
    extensions = certificate.extensions
    aki: bytes | None = None
    ski: bytes | None = None
    with contextlib.suppress(x509.ExtensionNotFound):
        aki = extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    with contextlib.suppress(x509.ExtensionNotFound):
        ski = extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    return aki, ski


def leaf_to_root(
    obj: KeyVaultObject, certificates: list[x509.Certificate]
) -> list[x509.Certificate]:
    """Order ``certificates`` leaf → intermediates → root by AKI/SKI links.

    The leaf is the first certificate that signed none of the others. Raises ProviderError when
    every certificate signed another (no leaf) or the links loop; returns the input order when
    the links do not reach every certificate (an incomplete chain).
    """
    nodes = [_Node(c, *_key_ids(c)) for c in certificates]
    for i, node in enumerate(nodes):
        for j, other in enumerate(nodes):
            if i == j or node.authority_key_id is None or other.subject_key_id is None:
                continue
            if node.authority_key_id == other.subject_key_id:
                node.parent, other.is_parent = j, True
                break
    leaf = next((i for i, node in enumerate(nodes) if not node.is_parent), None)
    if leaf is None:
        raise ProviderError(f"{obj.describe()}: certificate chain has no leaf")
    chain: list[x509.Certificate] = []
    current: int | None = leaf
    while current is not None:
        if len(chain) == len(nodes):
            raise ProviderError(f"{obj.describe()}: constructing chain resulted in cycle")
        chain.append(nodes[current].certificate)
        current = nodes[current].parent
    if len(chain) != len(nodes):
        log.warning("azure.certificate_chain_incomplete", object=obj.uid, certificates=len(nodes))
        return certificates
    return chain


def _b64url(value: object, what: str, obj: KeyVaultObject) -> int:
    """A JWK number field. azkeys decodes them with Go's ``base64.RawURLEncoding`` (line
    breaks skipped, nothing else outside the alphabet); trailing ``=`` is tolerated here."""
    if not isinstance(value, str) or not value:
        raise ProviderError(f"{obj.describe()}: key field {what!r} is missing")
    text = value.replace("\r", "").replace("\n", "").rstrip("=")
    try:
        if not _BASE64URL.fullmatch(text):
            raise ValueError(what)
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        raise ProviderError(f"{obj.describe()}: key field {what!r} is not base64url") from None
    return int.from_bytes(raw, "big")


def public_key_pem(obj: KeyVaultObject, bundle: dict[str, Any]) -> str:
    """``objectType: key``: the JSON Web Key of a key bundle as a "PUBLIC KEY" PEM block."""
    jwk = bundle.get("key")
    if not isinstance(jwk, dict):
        raise ProviderError(f"{obj.describe()}: key value is nil")
    kty = jwk.get("kty")
    public: rsa.RSAPublicKey | ec.EllipticCurvePublicKey
    try:
        if kty in ("RSA", "RSA-HSM"):
            exponent, modulus = _b64url(jwk.get("e"), "e", obj), _b64url(jwk.get("n"), "n", obj)
            public = rsa.RSAPublicNumbers(exponent, modulus).public_key()
        elif kty in ("EC", "EC-HSM"):
            curve = _CURVES.get(str(jwk.get("crv")))
            if curve is None:
                raise ProviderError(f"{obj.describe()}: curve {jwk.get('crv')!s} is not supported")
            x, y = _b64url(jwk.get("x"), "x", obj), _b64url(jwk.get("y"), "y", obj)
            public = ec.EllipticCurvePublicNumbers(x, y, curve).public_key()
        else:
            raise ProviderError(
                f"{obj.describe()}: failed to get key. key type {kty!s} currently not supported"
            )
    except ValueError:
        raise ProviderError(f"{obj.describe()}: not a valid {kty} public key") from None
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")
