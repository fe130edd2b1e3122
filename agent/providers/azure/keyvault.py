"""The Key Vault REST API (``api-version=7.4``, what upstream's Go SDK clients speak).

``GET {vault}/{secrets|keys|certificates}/{name}[/{version}]`` for one object and
``GET .../{name}/versions`` (paged by ``nextLink``) for its history. Each request carries a
token for the scope the vault's challenge named (challenge.py): the first request to a vault
goes without one to learn it; a 401 later (a revoked token, a changed challenge) is answered
by one fresh sign-in and one retry. Names and versions are URL path segments, quoted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from agent.aio.locks import KeyedLock
from agent.errors import ProviderError, ProviderThrottled, ProviderUnavailable
from agent.providers.azure.challenge import origin, scope_for
from agent.providers.azure.identity import Credential
from agent.providers.azure.objects import CERT, KEY, SECRET, KeyVaultObject
from agent.providers.azure.tokens import TokenSource
from agent.providers.azure.transport import Reply, Transport, retry_after

API_VERSION = "7.4"
COLLECTIONS = {SECRET: "secrets", KEY: "keys", CERT: "certificates"}
_PAGE_SIZE = 25
_MAX_PAGES = 1000
_MAX_MESSAGE = 300


@dataclass(frozen=True, slots=True)
class ObjectVersionInfo:
    """One entry of a version listing: its id and ``attributes.created`` (Unix seconds)."""

    version: str
    created: float


class ChallengeCache:
    """The token scope each vault origin asked for, learned once per origin."""

    def __init__(self) -> None:
        self._scopes: dict[str, str] = {}
        self.locks = KeyedLock()

    def get(self, vault_origin: str) -> str | None:
        return self._scopes.get(vault_origin)

    def put(self, vault_origin: str, scope: str) -> None:
        self._scopes[vault_origin] = scope


class KeyVaultClient:
    """Requests to one vault as one identity (one per mount; the caches it uses are shared)."""

    def __init__(
        self,
        transport: Transport,
        tokens: TokenSource,
        challenges: ChallengeCache,
        *,
        vault_url: str,
        vault_name: str,
        credential: Credential,
    ) -> None:
        self._transport = transport
        self._tokens = tokens
        self._challenges = challenges
        self._vault_url = vault_url.rstrip("/")
        self._origin = origin(vault_url)
        self._credential = credential
        self.service = f"Key Vault {vault_name!r}"

    async def get(self, obj: KeyVaultObject, version: str) -> dict[str, Any]:
        """The bundle of ``obj`` at ``version`` ("" for the latest)."""
        path = f"/{COLLECTIONS[obj.object_type]}/{quote(obj.name, safe='')}"
        if version:
            path += f"/{quote(version, safe='')}"
        url = f"{self._vault_url}{path}?api-version={API_VERSION}"
        reply = await self._call(url)
        if reply.status != 200 or reply.body is None:
            raise self._failure(reply, obj, version)
        return reply.body

    async def versions(self, obj: KeyVaultObject) -> list[ObjectVersionInfo]:
        """Every enabled version of ``obj``, in listing order (needs the ``list`` permission)."""
        collection = COLLECTIONS[obj.object_type]
        url: str | None = (
            f"{self._vault_url}/{collection}/{quote(obj.name, safe='')}/versions"
            f"?api-version={API_VERSION}&maxresults={_PAGE_SIZE}"
        )
        found: list[ObjectVersionInfo] = []
        pages = 0
        while url:
            pages += 1
            if pages > _MAX_PAGES:
                raise ProviderError(f"{obj.describe()}: more than {_MAX_PAGES} pages of versions")
            reply = await self._call(url)
            if reply.status != 200 or reply.body is None:
                raise self._failure(reply, obj, "")
            found.extend(_enabled_versions(reply.body, obj))
            url = self._next_link(reply.body, obj)
        return found

    def _next_link(self, body: dict[str, Any], obj: KeyVaultObject) -> str | None:
        link = body.get("nextLink")
        if not link:
            return None
        # The token goes wherever nextLink points: only ever back to the same vault.
        if not isinstance(link, str) or origin(link) != self._origin:
            raise ProviderError(f"{obj.describe()}: {self.service} sent a nextLink to another host")
        return link

    async def _call(self, url: str) -> Reply:
        scope = self._challenges.get(self._origin)
        if scope is None:
            async with self._challenges.locks.hold(self._origin):
                scope = self._challenges.get(self._origin)
                if scope is None:
                    reply = await self._transport.request("GET", url, service=self.service)
                    if reply.status != 401:
                        return reply  # a vault that wants no token (never Azure's own)
                    scope = self._learn(reply)
        token = await self._tokens.token(self._credential, scope)
        reply = await self._send(url, token)
        if reply.status == 401 and "www-authenticate" in reply.headers:
            self._tokens.invalidate(self._credential, scope, token)
            scope = self._learn(reply)
            reply = await self._send(url, await self._tokens.token(self._credential, scope))
        return reply

    def _learn(self, reply: Reply) -> str:
        scope = scope_for(self._vault_url, reply.headers.get("www-authenticate", ""), self.service)
        self._challenges.put(self._origin, scope)
        return scope

    async def _send(self, url: str, token: str) -> Reply:
        headers = {"Authorization": f"Bearer {token}"}
        return await self._transport.request("GET", url, service=self.service, headers=headers)

    def _failure(self, reply: Reply, obj: KeyVaultObject, version: str) -> ProviderError:
        what = obj.describe(version)
        if reply.status == 200:  # a gateway's page, or no body at all
            return ProviderError(
                f"{what}: {self.service} answered 200 with a body that is not a JSON object"
            )
        error = (reply.body or {}).get("error")
        error = error if isinstance(error, dict) else {}
        code = str(error.get("code") or f"HTTP {reply.status}")
        message = " ".join(str(error.get("message") or "").split())[:_MAX_MESSAGE]
        detail = f"{self.service} answered {reply.status} {code}"
        if message:
            detail += f": {message}"
        if reply.status == 401:
            return ProviderError(f"{what}: {detail} (as {self._credential.describe()})")
        if reply.status == 403:
            return ProviderError(
                f"{what}: {detail} (signed in as {self._credential.describe()}; it needs the "
                f"get{' and list' if obj.syncs_history else ''} permission on "
                f"{COLLECTIONS[obj.object_type]})"
            )
        if reply.status == 429:
            hint = retry_after(reply.headers, time.time())
            return ProviderThrottled(f"{what}: {detail}", retry_after=hint)
        if reply.status == 408 or reply.status >= 500:
            return ProviderUnavailable(f"{what}: {detail}")
        return ProviderError(f"{what}: {detail}")


def _enabled_versions(body: dict[str, Any], obj: KeyVaultObject) -> list[ObjectVersionInfo]:
    """Upstream skips entries without attributes and disabled ones."""
    items = body.get("value")
    if not isinstance(items, list):
        raise ProviderError(f"{obj.describe()}: the version listing has no 'value' list")
    found = []
    for item in items:
        if not isinstance(item, dict):
            continue
        attributes = item.get("attributes")
        if not isinstance(attributes, dict) or attributes.get("enabled") is False:
            continue
        version = version_of(item.get("kid") if obj.object_type == KEY else item.get("id"))
        if not version:
            continue
        created = attributes.get("created")
        when = float(created) if isinstance(created, int | float) and created is not True else 0.0
        found.append(ObjectVersionInfo(version, when))
    return found


def version_of(identifier: object) -> str:
    """The version of an object id, ``https://v.vault.azure.net/secrets/name/<version>``;
    "" when the id carries none."""
    if not isinstance(identifier, str):
        return ""
    parts = [p for p in urlsplit(identifier).path.split("/") if p]
    return parts[2] if len(parts) >= 3 else ""
