"""Turn a Vault response into file bytes and an object version (pure functions).

Semantics match hashicorp/vault-csi-provider: without ``secretKey`` the whole response JSON is
the file; with it, the key is looked up in ``data.data`` (KV v2) or ``data`` (KV v1), strings
are written raw and anything else as JSON, then ``encoding`` decodes the value.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from agent.errors import ProviderError
from agent.model import ObjectVersion
from agent.providers.vault.objects import SecretObject


def object_content(obj: SecretObject, response: Mapping[str, Any]) -> bytes:
    if not obj.key:
        # Upstream writes the whole response, encoding ignored; keep that for compatibility.
        return json.dumps(response, separators=(",", ":")).encode()
    data = response.get("data")
    if isinstance(data, Mapping) and isinstance(data.get("data"), Mapping):
        data = data["data"]
    if not isinstance(data, Mapping) or obj.key not in data:
        raise ProviderError(
            f"object {obj.name!r}: key {obj.key!r} does not exist at {obj.secret_path}"
        )
    value = data[obj.key]
    raw = value.encode() if isinstance(value, str) else json.dumps(value).encode()
    return decode(obj, raw)


def decode(obj: SecretObject, raw: bytes) -> bytes:
    try:
        if obj.encoding == "base64":
            return base64.b64decode(raw, validate=True)
        if obj.encoding == "hex":
            return binascii.unhexlify(raw)
    except (binascii.Error, ValueError):
        # Never echo the value: it is the secret.
        raise ProviderError(
            f"object {obj.name!r}: the value of key {obj.key!r} is not valid {obj.encoding}"
        ) from None
    return raw


def object_version(key: bytes, obj: SecretObject, content: bytes) -> ObjectVersion:
    """HMAC the config with the content: the version changes exactly when either does, and
    equal contents under different objects do not reveal that they are equal."""
    digest = hmac.new(key, obj.canonical() + content, hashlib.sha256).digest()
    return ObjectVersion(id=obj.name, version=base64.urlsafe_b64encode(digest).decode())
