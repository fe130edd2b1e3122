"""Which workload identity pool the pods' tokens are exchanged in, derived as upstream does.

1. GKE: project, cluster name and location from ``PROJECT`` / ``CLUSTER_NAME`` /
   ``CLUSTER_LOCATION``, each missing one from the GCE metadata server (``project/project-id``,
   ``instance/attributes/cluster-name``, ``instance/attributes/cluster-location``). The pool is
   ``<project>.svc.id.goog``, the identity provider
   ``https://container.googleapis.com/v1/projects/<project>/locations/<location>/clusters/<name>``
   and the STS audience ``identitynamespace:<pool>:<provider>``.
2. Otherwise (fleet, or workload identity federation outside Google Cloud): the
   ``external_account`` file named by ``GOOGLE_APPLICATION_CREDENTIALS``. An ``audience`` of the
   form ``identitynamespace:<pool>:<provider>`` gives the pool and provider; any other (e.g.
   ``//iam.googleapis.com/projects/<n>/locations/global/workloadIdentityPools/<p>/providers/<q>``)
   is used as the STS audience as it is.

The exchange goes to ``GAIA_TOKEN_EXCHANGE_ENDPOINT`` when set, else to upstream's securetoken
endpoint; for a plain federation audience (which securetoken does not serve, and for which
upstream's documentation says to set that variable to STS) the file's ``token_url``, else STS.
The result is resolved once and kept: none of its inputs change while the agent runs.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any

from agent.aio.threads import run_blocking
from agent.errors import ConfigError, ProviderError
from agent.providers.gcp.http import ApiFailure, GoogleHttp
from agent.providers.gcp.settings import (
    SECURETOKEN_URL,
    STS_URL,
    GcpSettings,
    check_token_url,
)

METADATA_TIMEOUT_S = 3.0
# Project IDs (also domain-scoped "example.com:app") and numbers, zones, regions, cluster names.
_METADATA_VALUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:_-]{0,127}")
_MAX_CREDENTIALS_FILE = 1024 * 1024


@dataclass(frozen=True, slots=True)
class WorkloadIdentity:
    pool: str  # "<project>.svc.id.goog"; "" for a plain federation audience
    audience: str  # asked of STS
    exchange_url: str

    @property
    def token_audiences(self) -> tuple[str, ...]:
        """Audiences a pod token may carry to be exchanged (upstream accepts either)."""
        return tuple(a for a in (self.audience, self.pool) if a)


class WorkloadIdentityResolver:
    def __init__(self, settings: GcpSettings, http: GoogleHttp) -> None:
        self._settings = settings
        self._http = http
        self._resolved: WorkloadIdentity | None = None
        self._lock = asyncio.Lock()

    async def resolve(self) -> WorkloadIdentity:
        if self._resolved is not None:
            return self._resolved
        async with self._lock:
            if self._resolved is None:
                self._resolved = await self._derive()
        return self._resolved

    async def _derive(self) -> WorkloadIdentity:
        try:
            pool, provider = await self._gke()
        except ProviderError as gke_error:
            try:
                return await self._from_credentials_file()
            except ProviderError as file_error:
                raise ProviderError(
                    "cannot determine the workload identity pool: GKE: "
                    f"{gke_error.message}; GOOGLE_APPLICATION_CREDENTIALS: {file_error.message}"
                ) from None
        return self._identity(pool, f"identitynamespace:{pool}:{provider}", "")

    def _identity(self, pool: str, audience: str, token_url: str) -> WorkloadIdentity:
        exchange = self._settings.endpoints.token_exchange
        if exchange is None:
            exchange = SECURETOKEN_URL if pool else (token_url or STS_URL)
        return WorkloadIdentity(pool, audience, exchange)

    async def _gke(self) -> tuple[str, str]:
        cluster = self._settings.cluster
        project = cluster.project or await self._metadata("project/project-id")
        location = cluster.location or await self._metadata("instance/attributes/cluster-location")
        name = cluster.name or await self._metadata("instance/attributes/cluster-name")
        provider = (
            f"{cluster.identity_provider_prefix}/projects/{project}"
            f"/locations/{location}/clusters/{name}"
        )
        return f"{project}.svc.id.goog", provider

    async def _metadata(self, path: str) -> str:
        url = f"{self._settings.endpoints.metadata}/computeMetadata/v1/{path}"
        what = f"metadata server ({path})"
        try:
            reply = await self._http.send(
                "GET",
                url,
                service="GCE metadata server",
                headers={"Metadata-Flavor": "Google"},
                timeout=METADATA_TIMEOUT_S,
            )
        except ApiFailure as failure:
            raise ProviderError(f"{what}: {failure.message}") from None
        value = reply.body.decode("utf-8", "replace").strip()
        if reply.status != 200 or not value:
            raise ProviderError(f"{what}: HTTP {reply.status}")
        if not _METADATA_VALUE.fullmatch(value):
            # It would become part of the pool and STS audience, kept for the agent's life.
            raise ProviderError(f"{what}: the answer is not an identifier ({len(value)} chars)")
        return value

    async def _from_credentials_file(self) -> WorkloadIdentity:
        path = self._settings.credentials_file
        if not path:
            raise ProviderError("not set")
        document = await run_blocking(_read_json, path)
        if document.get("type") != "external_account":
            raise ProviderError(
                f"{path}: credentials type {document.get('type')!r}, expected 'external_account'"
            )
        audience = document.get("audience")
        if not isinstance(audience, str) or not audience:
            raise ProviderError(f"{path}: no audience")
        parts = audience.split(":", 2)
        if len(parts) == 3:
            return self._identity(parts[1], audience, "")
        token_url = document.get("token_url")
        if isinstance(token_url, str) and token_url:
            try:
                token_url = check_token_url(f"{path}: token_url", token_url)
            except ConfigError as err:
                raise ProviderError(err.message) from None
        else:
            token_url = ""
        return self._identity("", audience, token_url)


def _read_json(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            raw = handle.read(_MAX_CREDENTIALS_FILE + 1)
    except OSError as err:
        raise ProviderError(f"cannot read {path}: {err.strerror or err}") from None
    return json_object(raw, path)


def json_object(raw: str | bytes, where: str) -> dict[str, Any]:
    """A credentials document: a JSON object, else ProviderError naming ``where``."""
    try:
        document = json.loads(raw)
    except ValueError:
        raise ProviderError(f"{where}: not JSON") from None
    if not isinstance(document, dict):
        raise ProviderError(f"{where}: not a JSON object")
    return document
