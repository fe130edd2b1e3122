"""Access tokens for Key Vault, from Entra (client credentials) or IMDS, cached per identity.

A token is reused until shortly before it expires: a quarter of its lifetime, at most five
minutes, before (the Azure SDKs refresh five minutes early), or earlier when Entra says so with
``refresh_in``. The cache is the providers' shared one (``credential_cache``): concurrent
requests for one identity and scope wait for a single sign-in, and the key (identity.TokenKey)
digests the client secret or the pod's token, so a token is only ever handed out with the very
proof that bought it; kubelet refreshing the pod's token costs one sign-in and drops the old
entry.
Messages name the identity and Entra's error code, never a token, assertion or secret.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from agent.errors import ProviderError, ProviderThrottled, ProviderUnavailable
from agent.providers.azure.challenge import DEFAULT_SUFFIX
from agent.providers.azure.identity import (
    ClientCredential,
    Credential,
    ManagedIdentity,
    TokenKey,
)
from agent.providers.azure.transport import Reply, Transport, retry_after
from agent.providers.credential_cache import CredentialCache

IMDS_TOKEN_PATH = "/metadata/identity/oauth2/token"  # noqa: S105 (a URL path)
IMDS_API_VERSION = "2018-02-01"
_MAX_EARLY_REFRESH_S = 300.0
_MAX_LIFETIME_S = 86400.0
_EARLY_FRACTION = 0.25
_MAX_MESSAGE = 300
# RFC 6750 §2.1 b64token: what may follow "Bearer " in the Authorization header.
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")


def usable_for(lifetime: float, refresh_in: float | None = None) -> float:
    """Seconds a token with ``lifetime`` seconds left may be served from the cache."""
    early = min(_MAX_EARLY_REFRESH_S, lifetime * _EARLY_FRACTION)
    usable = max(0.0, lifetime - early)
    return min(usable, refresh_in) if refresh_in and refresh_in > 0 else usable


class TokenSource:
    """Access tokens per (identity, scope), through the providers' shared CredentialCache."""

    def __init__(
        self,
        transport: Transport,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 1000,
    ) -> None:
        self._transport = transport
        self._cache: CredentialCache[TokenKey, str] = CredentialCache(
            clock=clock, max_entries=max_entries
        )
        self.sign_ins = 0  # token requests sent (tests and benchmarks read it)

    def __len__(self) -> int:
        return len(self._cache)

    async def token(self, credential: Credential, scope: str) -> str:
        key = credential.cache_key(scope)

        async def sign_in() -> tuple[str, float]:
            token, lifetime, refresh_in = await self._request(credential, scope)
            return token, usable_for(lifetime, refresh_in)

        return await self._cache.get_or_fetch(key, sign_in)

    def invalidate(self, credential: Credential, scope: str, token: str) -> None:
        """Forget ``token`` (the vault refused it) unless another task already replaced it."""
        self._cache.invalidate(credential.cache_key(scope), token)

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
    if not isinstance(token, str) or not token:
        raise ProviderError(f"{refused}: the answer has no access_token")
    if not _BEARER_TOKEN.fullmatch(token):
        raise ProviderError(f"{refused}: the answer's access_token is not a bearer token")
    lifetime = _seconds(body.get("expires_in"))
    if lifetime is None:
        raise ProviderError(f"{refused}: the answer's expires_in is not a number of seconds")
    return token, lifetime, _seconds(body.get("refresh_in"))


def _seconds(value: object) -> float | None:
    """expires_in is a number from Entra and a string from IMDS; None unless it is a finite,
    non-negative number (JSON as Python reads it also allows Infinity and NaN). Entra and IMDS
    issue tokens for at most a day: a longer claim is held to that."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return float(min(value, _MAX_LIFETIME_S)) if value >= 0 else None
