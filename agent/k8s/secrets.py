"""The HMAC key behind object versions, in a Secret (secret sync has its own store,
``synced_secrets``).

``VersionKeySecret`` keeps the key that makes Vault object versions agree across nodes in one
Secret in the agent's namespace, created once if absent, as hashicorp's vault-csi-provider does
with ``vault-csi-provider-hmac-key``. Reads and the creation use the publish lane: start waits
for the key. The key never appears in a log line or an error.
"""

from __future__ import annotations

import base64
import secrets

import structlog

from agent.errors import ApiAlreadyExists, ApiNotFound
from agent.k8s.api import KubeApi, Lane, Object
from agent.k8s.resources import SECRETS

log = structlog.get_logger(__name__)

KEY_FIELD = "key"
KEY_BYTES = 32


class VersionKeySecret:
    def __init__(self, api: KubeApi, namespace: str, name: str) -> None:
        self._api = api
        self.namespace = namespace
        self.name = name

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    async def load(self) -> bytes:
        """Read the key, creating the Secret if it does not exist (one node wins the race, the
        others read its key). Raises KubernetesApiError, or ValueError for a malformed Secret."""
        found = await self._get()
        if found is None:
            try:
                body = self._new_secret()
                found = await self._api.create(SECRETS, self.namespace, body, Lane.PUBLISH)
                log.info("version_key.created", secret_name=self.ref)
            except ApiAlreadyExists:
                found = await self._get()
        if found is None:
            raise ValueError(f"secret {self.ref} vanished while it was being created")
        return self._decode(found)

    async def _get(self) -> Object | None:
        try:
            return await self._api.get(SECRETS, self.namespace, self.name, Lane.PUBLISH)
        except ApiNotFound:
            return None

    def _new_secret(self) -> Object:
        key = secrets.token_bytes(KEY_BYTES)
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {"app.kubernetes.io/managed-by": "secrets-store-agent"},
            },
            "type": "Opaque",
            "data": {KEY_FIELD: base64.b64encode(key).decode()},
        }

    def _decode(self, secret: Object) -> bytes:
        data = secret.get("data")
        value = data.get(KEY_FIELD) if isinstance(data, dict) else None
        try:
            key = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
        except ValueError:
            key = b""
        if len(key) < 16:
            raise ValueError(
                f"secret {self.ref} has no usable data.{KEY_FIELD} (at least 16 bytes, base64)"
            )
        return key
