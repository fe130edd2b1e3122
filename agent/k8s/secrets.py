"""Secrets through the API, and the HMAC key behind object versions.

``KubeSecrets`` is the adapter's plain Secret access (get, create, merge patch, replace,
delete); secret sync builds on it. ``VersionKeySecret`` keeps the key that makes Vault object
versions agree across nodes in one Secret in the agent's namespace, created once if absent,
as hashicorp's vault-csi-provider does with ``vault-csi-provider-hmac-key``. The key never
appears in a log line or an error.
"""

from __future__ import annotations

import base64
import contextlib
import secrets

import structlog

from agent.errors import ApiAlreadyExists, ApiNotFound
from agent.k8s.api import KubeApi, Lane, Object
from agent.k8s.resources import SECRETS

log = structlog.get_logger(__name__)

KEY_FIELD = "key"
KEY_BYTES = 32


class KubeSecrets:
    def __init__(self, api: KubeApi, lane: Lane = Lane.PUBLISH) -> None:
        self._api = api
        self._lane = lane

    async def get(self, namespace: str, name: str) -> Object | None:
        try:
            return await self._api.get(SECRETS, namespace, name, self._lane)
        except ApiNotFound:
            return None

    async def create(self, namespace: str, body: Object) -> Object:
        return await self._api.create(SECRETS, namespace, body, self._lane)

    async def merge_patch(self, namespace: str, name: str, patch: Object) -> Object:
        return await self._api.merge_patch(SECRETS, namespace, name, patch, self._lane)

    async def replace(self, namespace: str, name: str, body: Object) -> Object:
        return await self._api.replace(SECRETS, namespace, name, body, self._lane)

    async def delete(self, namespace: str, name: str) -> None:
        with contextlib.suppress(ApiNotFound):
            await self._api.delete(SECRETS, namespace, name, self._lane)


class VersionKeySecret:
    def __init__(self, secrets_api: KubeSecrets, namespace: str, name: str) -> None:
        self._secrets = secrets_api
        self.namespace = namespace
        self.name = name

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    async def load(self) -> bytes:
        """Read the key, creating the Secret if it does not exist (one node wins the race, the
        others read its key). Raises KubernetesApiError, or ValueError for a malformed Secret."""
        found = await self._secrets.get(self.namespace, self.name)
        if found is None:
            try:
                found = await self._secrets.create(self.namespace, self._new_secret())
                log.info("version_key.created", secret_name=self.ref)
            except ApiAlreadyExists:
                found = await self._secrets.get(self.namespace, self.name)
        if found is None:
            raise ValueError(f"secret {self.ref} vanished while it was being created")
        return self._decode(found)

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
        value = (secret.get("data") or {}).get(KEY_FIELD)
        try:
            key = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
        except ValueError:
            key = b""
        if len(key) < 16:
            raise ValueError(
                f"secret {self.ref} has no usable data.{KEY_FIELD} (at least 16 bytes, base64)"
            )
        return key
