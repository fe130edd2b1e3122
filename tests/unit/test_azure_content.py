"""What Key Vault objects become on disk: PKCS#12 to PEM with real chains, keys, certificates,
encodings, as the upstream Azure provider writes them."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from agent.errors import ProviderError
from agent.providers.azure.content import (
    CONTENT_TYPE_PEM,
    CONTENT_TYPE_PFX,
    Piece,
    object_pieces,
    pem_blocks,
)
from agent.providers.azure.objects import KeyVaultObject
from tests.support.pki import chain, issue, pfx

KID = "https://kv.vault.azure.net/keys/tls/0123"


def obj(object_type: str = "secret", **fields: Any) -> KeyVaultObject:
    return KeyVaultObject(index=0, name="tls", object_type=object_type, file_name="tls", **fields)


def pieces(
    o: KeyVaultObject, bundle: dict[str, Any], *, chain_on: bool = True, separate: bool = False
) -> list[Piece]:
    return object_pieces(o, bundle, construct_chain=chain_on, separate_files=separate)


def single(o: KeyVaultObject, bundle: dict[str, Any], **kwargs: Any) -> bytes:
    (piece,) = pieces(o, bundle, **kwargs)
    assert piece.suffix == ""
    return piece.contents


def certificates_in(pem: bytes) -> list[str]:
    return [c.subject.rfc4514_string() for c in x509.load_pem_x509_certificates(pem)]


def pfx_bundle(data: bytes) -> dict[str, Any]:
    return {"value": base64.b64encode(data).decode(), "contentType": CONTENT_TYPE_PFX, "kid": KID}


def test_pfx_becomes_key_then_chain_from_leaf_to_root() -> None:
    c = chain("app.example.com", rsa_leaf=True)
    # Stored out of order: the chain is rebuilt from the key identifiers.
    data = pfx(c.leaf.key, c.leaf.certificate, [c.root.certificate, c.intermediate.certificate])
    out = single(obj(), pfx_bundle(data))
    kinds = [kind for kind, _ in pem_blocks(out.decode())]
    assert kinds == ["PRIVATE KEY", "CERTIFICATE", "CERTIFICATE", "CERTIFICATE"]
    assert out.startswith(c.leaf.key_pem)  # PKCS#8, not "RSA PRIVATE KEY"
    assert certificates_in(out) == [
        "CN=app.example.com",
        "CN=Test Intermediate CA",
        "CN=Test Root CA",
    ]
    # Exactly Go's pem.EncodeToMemory framing: 64-column lines.
    assert out.endswith(c.root.pem)
    assert max(len(line) for line in out.splitlines()) == 64


def test_incomplete_chain_keeps_the_stored_order() -> None:
    c = chain()
    data = pfx(c.leaf.key, c.leaf.certificate, [c.root.certificate])  # intermediate missing
    out = single(obj(), pfx_bundle(data))
    assert certificates_in(out) == ["CN=app.example.com", "CN=Test Root CA"]


def test_chain_construction_can_be_turned_off() -> None:
    c = chain()
    data = pfx(c.leaf.key, c.leaf.certificate, [c.root.certificate, c.intermediate.certificate])
    out = single(obj(), pfx_bundle(data), chain_on=False)
    assert certificates_in(out) == [
        "CN=app.example.com",
        "CN=Test Root CA",
        "CN=Test Intermediate CA",
    ]


def test_certificates_without_key_identifiers_keep_their_order() -> None:
    root = issue("Root", ca=True, key_identifiers=False)
    leaf = issue("leaf", issuer=root, key_identifiers=False)
    out = single(obj(), pfx_bundle(pfx(leaf.key, leaf.certificate, [root.certificate])))
    assert certificates_in(out) == ["CN=leaf", "CN=Root"]


def test_pfx_format_keeps_the_stored_value_and_base64_makes_it_binary() -> None:
    c = chain()
    data = pfx(c.leaf.key, c.leaf.certificate, [c.intermediate.certificate])
    bundle = pfx_bundle(data)
    assert single(obj(object_format="pfx"), bundle) == bundle["value"].encode()
    assert single(obj(object_format="pfx", encoding="base64"), bundle) == data


def test_pem_certificate_secret_is_written_as_stored() -> None:
    c = chain()
    value = (c.leaf.key_pem + c.root.pem + c.leaf.pem).decode()
    out = single(obj(), {"value": value, "contentType": CONTENT_TYPE_PEM, "kid": KID})
    assert out == value.encode()


def test_separate_certificate_and_key_files() -> None:
    c = chain()
    data = pfx(c.leaf.key, c.leaf.certificate, [c.intermediate.certificate, c.root.certificate])
    crt, key, combined = pieces(obj(), pfx_bundle(data), separate=True)
    assert (crt.suffix, key.suffix, combined.suffix) == (".crt", ".key", "")
    assert key.contents == c.leaf.key_pem
    assert crt.contents == c.leaf.pem + c.intermediate.pem + c.root.pem
    assert combined.contents == key.contents + crt.contents
    # A plain secret gets no extra files.
    assert [p.suffix for p in pieces(obj(), {"value": "x"}, separate=True)] == [""]


def test_unknown_certificate_content_type_is_an_error() -> None:
    with pytest.raises(ProviderError, match="unknown content type 'application/json'"):
        single(obj(), {"value": "{}", "contentType": "application/json", "kid": KID})


def test_corrupt_pfx_is_an_error_without_its_content() -> None:
    with pytest.raises(ProviderError) as caught:
        single(obj(), pfx_bundle(b"not a pkcs12 file"))
    assert "PKCS#12" in caught.value.message
    assert "bm90IGE" not in caught.value.message


def test_object_encodings() -> None:
    blob = bytes(range(256))
    assert single(obj(encoding="base64"), {"value": base64.b64encode(blob).decode()}) == blob
    wrapped = base64.encodebytes(blob).decode()  # with newlines, which Go's decoder skips
    assert single(obj(encoding="base64"), {"value": wrapped}) == blob
    assert single(obj(encoding="hex"), {"value": blob.hex().upper()}) == blob
    assert single(obj(), {"value": "héllo"}) == "héllo".encode()
    for encoding, value in [("base64", "s3cret!!"), ("hex", "abc"), ("hex", "ab cd")]:
        with pytest.raises(ProviderError) as caught:
            single(obj(encoding=encoding), {"value": value})
        assert (
            f"objects[0].objectEncoding: the content is not valid {encoding}"
            in caught.value.message
        )
        assert value not in caught.value.message


def _b64url(number: int, size: int | None = None) -> str:
    raw = number.to_bytes(size or (number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _spki(public: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> bytes:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize("kty", ["RSA", "RSA-HSM"])
def test_rsa_key_is_written_as_pkix_public_key(kty: str) -> None:
    public = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    numbers = public.public_numbers()
    jwk = {"kid": KID, "kty": kty, "n": _b64url(numbers.n), "e": _b64url(numbers.e)}
    assert single(obj("key"), {"key": jwk}) == _spki(public)


@pytest.mark.parametrize(
    ("crv", "curve", "size"),
    [("P-256", ec.SECP256R1(), 32), ("P-384", ec.SECP384R1(), 48), ("P-521", ec.SECP521R1(), 66)],
)
def test_ec_key_is_written_as_pkix_public_key(crv: str, curve: ec.EllipticCurve, size: int) -> None:
    public = ec.generate_private_key(curve).public_key()
    numbers = public.public_numbers()
    jwk = {
        "kid": KID,
        "kty": "EC-HSM",
        "crv": crv,
        "x": _b64url(numbers.x, size),
        "y": _b64url(numbers.y, size),
    }
    assert single(obj("key"), {"key": jwk}) == _spki(public)


@pytest.mark.parametrize(
    ("jwk", "expected"),
    [
        ({"kty": "oct-HSM"}, "key type oct-HSM currently not supported"),
        ({"kty": "EC", "crv": "P-256K", "x": "AA", "y": "AA"}, "curve P-256K is not supported"),
        ({"kty": "EC", "crv": "P-256", "x": "AQ", "y": "AQ"}, "not a valid EC public key"),
        ({"kty": "RSA", "e": "AQAB"}, "key field 'n' is missing"),
    ],
)
def test_unsupported_or_broken_keys_are_errors(jwk: dict[str, str], expected: str) -> None:
    with pytest.raises(ProviderError, match=expected):
        single(obj("key"), {"key": jwk})


def test_certificate_is_the_leaf_alone_in_pem() -> None:
    c = chain()
    bundle = {"cer": base64.b64encode(c.leaf.der).decode(), "id": "x"}
    assert single(obj("cert"), bundle) == c.leaf.pem
    with pytest.raises(ProviderError, match="certificate value is nil"):
        single(obj("cert"), {"id": "x"})


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
@pytest.mark.parametrize("legacy", [False, True])
def test_password_protected_with_empty_password_as_key_vault_exports(
    tmp_path: Path, legacy: bool
) -> None:
    # Key Vault's PKCS#12 is encrypted with an empty password (3DES with -legacy); cryptography
    # cannot write such a file, OpenSSL can.
    c = chain()
    (tmp_path / "key.pem").write_bytes(c.leaf.key_pem)
    (tmp_path / "certs.pem").write_bytes(c.root.pem + c.leaf.pem + c.intermediate.pem)
    command = [
        "openssl",
        "pkcs12",
        "-export",
        "-passout",
        "pass:",
        "-inkey",
        str(tmp_path / "key.pem"),
        "-in",
        str(tmp_path / "certs.pem"),
    ]
    data = subprocess.run(
        [*command, *(["-legacy"] if legacy else [])], capture_output=True, check=True
    ).stdout
    out = single(obj(), pfx_bundle(data))
    assert out.startswith(c.leaf.key_pem)
    assert certificates_in(out) == [
        "CN=app.example.com",
        "CN=Test Intermediate CA",
        "CN=Test Root CA",
    ]


@pytest.mark.parametrize(
    "damage",
    [
        lambda n: n[:40] + "!!!!" + n[40:],  # characters outside base64url
        lambda n: n[:40] + "    " + n[40:],
        lambda n: n[:40] + "+/" + n[42:],  # standard base64, not base64url
        lambda n: n[:-1] if len(n) % 4 == 2 else n[:-2],  # a dangling sextet
    ],
)
def test_a_damaged_key_field_is_an_error_not_another_key(damage: Any) -> None:
    # azkeys decodes JWK fields with base64.RawURLEncoding (azcore DecodeByteArray,
    # Base64URLFormat): a stray character fails there, where a lenient decoder would drop it
    # and write a different public key.
    public = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    numbers = public.public_numbers()
    jwk = {"kid": KID, "kty": "RSA", "n": damage(_b64url(numbers.n)), "e": _b64url(numbers.e)}
    with pytest.raises(ProviderError, match="key field 'n' is not base64url"):
        single(obj("key"), {"key": jwk})
