"""Turn a Vault response into file bytes and an object version (pure functions).

Bytes match hashicorp/vault-csi-provider (``internal/provider/provider.go`` getSecret and
keyFromData): without ``secretKey`` the file is ``json.Marshal`` of the decoded ``api.Secret``
(see ``secret.py``); with it, the key is looked up in ``data.data`` (KV v2) or ``data`` (KV v1),
a string is written raw and anything else as ``json.Marshal`` of the value (compact, sorted
keys, ``<`` ``>`` ``&`` escaped, numbers as Vault wrote them), then ``encoding`` decodes the
value as Go's decoders do (``agent.providers.common.encoding``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

from agent.errors import ProviderError
from agent.model import ObjectVersion
from agent.providers.common.encoding import InvalidEncodedValue, decode_content
from agent.providers.common.gojson import marshal
from agent.providers.vault.objects import SecretObject
from agent.providers.vault.secret import VaultSecret


def object_content(obj: SecretObject, secret: VaultSecret) -> bytes:
    if not obj.key:
        # Upstream writes the whole response, encoding ignored; keep that for compatibility.
        return secret.to_json()
    data: object = secret.data
    if isinstance(data, Mapping) and isinstance(data.get("data"), Mapping):
        data = data["data"]
    if not isinstance(data, Mapping) or obj.key not in data:
        raise ProviderError(
            f"object {obj.name!r}: key {obj.key!r} does not exist at {obj.secret_path}"
        )
    value = data[obj.key]
    raw = value.encode() if isinstance(value, str) else marshal(value)
    return decode(obj, raw)


def decode(obj: SecretObject, raw: bytes) -> bytes:
    try:
        return decode_content(raw, obj.encoding)
    except InvalidEncodedValue as err:
        # Never echo the value: it is the secret.
        raise ProviderError(f"object {obj.name!r}: the value of key {obj.key!r} is {err}") from None


def object_version(key: bytes, obj: SecretObject, content: bytes) -> ObjectVersion:
    """HMAC the config with the content: the version changes exactly when either does, and
    equal contents under different objects do not reveal that they are equal."""
    digest = hmac.new(key, obj.canonical() + content, hashlib.sha256).digest()
    return ObjectVersion(id=obj.name, version=base64.urlsafe_b64encode(digest).decode())
