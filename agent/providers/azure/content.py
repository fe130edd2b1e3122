"""What each Key Vault object becomes on disk, as the upstream Azure provider writes it.

- ``secret``: the value; when the secret backs a certificate (``kid`` set), a PKCS#12 value is
  converted to PEM (private key first, then the chain leaf to root: ``pkcs.pfx_to_pem``) unless
  ``objectFormat: pfx`` asks for the base64 PFX as stored; a PEM value is kept as it is. Then
  ``objectEncoding`` (``base64`` / ``hex``) decodes the text to bytes.
- ``key``: the public key as a PKIX "PUBLIC KEY" PEM block (RSA, EC P-256/384/521).
- ``cert``: the certificate's DER (``cer``) as one "CERTIFICATE" PEM block, without the chain.

Plain secrets and certificates need no cryptography; key conversions and PKCS#12 do, and that
module (``pkcs``) is imported only when one is met, in a worker thread.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from agent.errors import ProviderError
from agent.providers.azure.objects import (
    CERT,
    FORMAT_PFX,
    KEY,
    SECRET,
    KeyVaultObject,
)
from agent.providers.common.encoding import decode_content, go_base64

CONTENT_TYPE_PEM = "application/x-pem-file"
CONTENT_TYPE_PFX = "application/x-pkcs12"
CERTIFICATE_BLOCK = "CERTIFICATE"
_PEM_LINE = 64


@dataclass(frozen=True, slots=True)
class Piece:
    """One file of an object: its suffix to the file name ("" for the main file) and bytes."""

    suffix: str
    contents: bytes = field(repr=False)


def pem_block(kind: str, der: bytes) -> str:
    """One PEM block without headers, 64 characters a line, as Go's ``pem.EncodeToMemory``."""
    text = base64.b64encode(der).decode("ascii")
    lines = [text[i : i + _PEM_LINE] for i in range(0, len(text), _PEM_LINE)]
    return (
        f"-----BEGIN {kind}-----\n"
        + "".join(f"{line}\n" for line in lines)
        + (f"-----END {kind}-----\n")
    )


def std_base64(text: str) -> bytes:
    """Go's ``base64.StdEncoding.DecodeString`` (also how encoding/json reads ``[]byte``).
    Raises ValueError."""
    return go_base64(text.encode("utf-8"))


def certificate_pem(obj: KeyVaultObject, bundle: dict[str, Any]) -> str:
    """``objectType: cert``: the ``cer`` field (base64 DER) as one CERTIFICATE block."""
    cer = bundle.get("cer")
    if not isinstance(cer, str) or not cer:
        raise ProviderError(f"{obj.describe()}: certificate value is nil")
    try:
        der = std_base64(cer)
    except ValueError:
        raise ProviderError(f"{obj.describe()}: certificate value is not base64") from None
    return pem_block(CERTIFICATE_BLOCK, der)


def needs_conversion(obj: KeyVaultObject, bundle: dict[str, Any]) -> bool:
    """True when building this object's content needs cryptography (run it off the loop)."""
    if obj.object_type == KEY:
        return True
    return (
        obj.object_type == SECRET
        and bool(bundle.get("kid"))
        and bundle.get("contentType") == CONTENT_TYPE_PFX
        and obj.object_format != FORMAT_PFX
    )


def secret_text(obj: KeyVaultObject, bundle: dict[str, Any], *, construct_chain: bool) -> str:
    """The text a ``secret`` object holds before ``objectEncoding`` (may run cryptography)."""
    value = bundle.get("value")
    if not isinstance(value, str):
        raise ProviderError(f"{obj.describe()}: secret value is nil")
    if not bundle.get("kid"):
        return value
    content_type = bundle.get("contentType")
    if content_type == CONTENT_TYPE_PEM or (
        content_type == CONTENT_TYPE_PFX and obj.object_format == FORMAT_PFX
    ):
        return value
    if content_type != CONTENT_TYPE_PFX:
        raise ProviderError(
            f"{obj.describe()}: failed to get certificate. unknown content type "
            f"{str(content_type or '')!r}"
        )
    from agent.providers.azure import pkcs

    return pkcs.pfx_to_pem(obj, value, construct_chain=construct_chain)


def split_certificate_and_key(pem: str) -> tuple[str, str]:
    """The CERTIFICATE blocks and the other blocks of a PEM text, each re-encoded (the
    ``--write-cert-and-key-in-separate-files`` outputs); either may be empty, as upstream."""
    certs: list[str] = []
    keys: list[str] = []
    for kind, der in pem_blocks(pem):
        (certs if kind == CERTIFICATE_BLOCK else keys).append(pem_block(kind, der))
    return "".join(certs), "".join(keys)


def pem_blocks(text: str) -> list[tuple[str, bytes]]:
    """The (type, DER) of each well-formed PEM block in ``text``, in order; stops at the first
    malformed one, as Go's ``pem.Decode`` loop does."""
    found: list[tuple[str, bytes]] = []
    rest = text
    while True:
        start = rest.find("-----BEGIN ")
        if start < 0:
            return found
        head_end = rest.find("-----", start + 11)
        if head_end < 0:
            return found
        kind = rest[start + 11 : head_end]
        footer = f"-----END {kind}-----"
        end = rest.find(footer, head_end + 5)
        if end < 0:
            return found
        body = rest[head_end + 5 : end]
        if ":" in body:  # headers (Proc-Type etc.): drop them, keep the base64 after a blank line
            body = body.split("\n\n", 1)[-1]
        try:
            found.append((kind, base64.b64decode("".join(body.split()), validate=True)))
        except ValueError:
            return found
        rest = rest[end + len(footer) :]


def object_pieces(
    obj: KeyVaultObject,
    bundle: dict[str, Any],
    *,
    construct_chain: bool,
    separate_files: bool,
) -> list[Piece]:
    """Every file one fetched version of ``obj`` writes, suffix and bytes, in upstream's order
    (``.crt`` and ``.key`` before the combined file). Blocking: may run cryptography."""
    if obj.object_type == KEY:
        from agent.providers.azure import pkcs

        return [Piece("", pkcs.public_key_pem(obj, bundle).encode())]
    if obj.object_type == CERT:
        return [Piece("", certificate_pem(obj, bundle).encode())]
    text = secret_text(obj, bundle, construct_chain=construct_chain)
    texts = [("", text)]
    if bundle.get("kid") and separate_files:
        cert, key = split_certificate_and_key(text)
        texts = [(".crt", cert), (".key", key), ("", text)]
    pieces = []
    for suffix, piece in texts:
        try:
            pieces.append(Piece(suffix, decode_content(piece.encode("utf-8"), obj.encoding)))
        except ValueError:
            raise ProviderError(
                f"{obj.describe()}: objects[{obj.index}].objectEncoding: the content is not "
                f"valid {obj.encoding}"
            ) from None
    return pieces
