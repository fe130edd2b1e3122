"""Access tokens for Key Vault, from Entra (client credentials) or IMDS, cached per identity.

A token is reused until shortly before it expires: a quarter of its lifetime, at most five
minutes, before (the Azure SDKs refresh five minutes early), or earlier when Entra says so with
``refresh_in``. Concurrent requests for one identity and scope wait for a single sign-in. The
cache key digests the client secret or the pod's token, so a token is only ever handed out
with the very proof that bought it, and kubelet refreshing the pod's token costs one sign-in.
Messages name the identity and Entra's error code, never a token, assertion or secret.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from agent.aio.locks import KeyedLock
from agent.errors import ProviderError, ProviderThrottled, ProviderUnavailable
from agent.providers.azure.challenge import DEFAULT_SUFFIX
from agent.providers.azure.identity import ClientCredential, Credential, ManagedIdentity
from agent.providers.azure.transport import Reply, Transport
from agent.providers.common.throttling import retry_after

IMDS_TOKEN_PATH = "/metadata/identity/oauth2/token"  # noqa: S105 (a URL path)
IMDS_API_VERSION = "2018-02-01"
_MAX_EARLY_REFRESH_S = 300.0
_EARLY_FRACTION = 0.25
_MAX_MESSAGE = 300


@dataclass(frozen=True, slots=True)
class _Entry:
    token: str = field(repr=False)
    refresh_at: float


def usable_for(lifetime: float, refresh_in: float | None = None) -> float:
    """Seconds a token with ``lifetime`` seconds left may be served from the cache."""
    early = min(_MAX_EARLY_REFRESH_S, lifetime * _EARLY_FRACTION)
    usable = max(0.0, lifetime - early)
    return min(usable, refresh_in) if refresh_in and refresh_in > 0 else usable


class TokenSource:
    def __init__(
        self,
        transport: Transport,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 1000,
    ) -> None:
        self._transport = transport
        self._clock = clock
        self._max_entries = max_entries
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._locks = KeyedLock()
        self.sign_ins = 0  # token requests sent (tests and benchmarks read it)

    def __len__(self) -> int:
        return len(self._entries)

    async def token(self, credential: Credential, scope: str) -> str:
        key = credential.cache_key(scope)
        cached = self._cached(key)
        if cached is not None:
            return cached
        async with self._locks.hold(key):
            cached = self._cached(key)
            if cached is not None:
                return cached
            started = self._clock()
            token, lifetime, refresh_in = await self._request(credential, scope)
            self._store(key, token, started + usable_for(lifetime, refresh_in))
            return token

    def invalidate(self, credential: Credential, scope: str, token: str) -> None:
        """Forget ``token`` (the vault refused it) unless another task already replaced it."""
        key = credential.cache_key(scope)
        entry = self._entries.get(key)
        if entry is not None and entry.token == token:
            del self._entries[key]

    def _cached(self, key: str) -> str | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.refresh_at <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry.token

    def _store(self, key: str, token: str, refresh_at: float) -> None:
        if refresh_at <= self._clock():
            return
        self._entries[key] = _Entry(token, refresh_at)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    async def _request(self, credential: Credential, scope: str) -> tuple[str, float, float | None]:
        self.sign_ins += 1
        if isinstance(credential, ManagedIdentity):
            return await self._from_imds(credential, scope)
        return await self._from_entra(credential, scope)

    async def _from_entra(
        self, credential: ClientCredential, scope: str
    ) -> tuple[str, float, float | None]:
        reply = await self._transport.request(
            "POST", credential.token_url(), service="Entra ID", data=credential.form(scope)
        )
        return _token_reply(reply, f"Entra ID refused the {credential.describe()} sign-in")

    async def _from_imds(
        self, credential: ManagedIdentity, scope: str
    ) -> tuple[str, float, float | None]:
        query = {"api-version": IMDS_API_VERSION, "resource": scope.removesuffix(DEFAULT_SUFFIX)}
        if credential.client_id:
            query["client_id"] = credential.client_id
        url = f"{credential.endpoint}{IMDS_TOKEN_PATH}?{urlencode(query)}"
        reply = await self._transport.request(
            "GET", url, service="the instance metadata service", headers={"Metadata": "true"}
        )
        return _token_reply(reply, f"IMDS refused a token for the {credential.describe()}")


def _token_reply(reply: Reply, refused: str) -> tuple[str, float, float | None]:
    body: dict[str, Any] = reply.body or {}
    if reply.status != 200:
        error = str(body.get("error") or f"HTTP {reply.status}")
        detail = str(body.get("error_description") or "").strip().splitlines()
        message = f"{refused}: {error}" + (f": {detail[0][:_MAX_MESSAGE]}" if detail else "")
        if reply.status == 429:
            raise ProviderThrottled(message, retry_after=retry_after(reply.headers, time.time()))
        if reply.status >= 500:
            raise ProviderUnavailable(message)
        raise ProviderError(message)
    token = body.get("access_token")
    lifetime = _seconds(body.get("expires_in"))
    if not isinstance(token, str) or not token or lifetime is None:
        raise ProviderError(f"{refused}: the answer has no access_token or expires_in")
    return token, lifetime, _seconds(body.get("refresh_in"))


def _seconds(value: object) -> float | None:
    """expires_in is a number from Entra and a string from IMDS."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value.strip().isdigit():
        return float(value.strip())
    return None
