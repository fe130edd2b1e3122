"""Vault API calls the provider needs: log in as a pod (cached) and read a secret path.

Error messages name the path, the role and Vault's own ``errors`` strings; they never carry the
service account JWT, the Vault token or any response data.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode

import structlog

from agent.config import DEFAULT_MAX_PAYLOAD_BYTES
from agent.documents.names import shown_name
from agent.errors import ProviderError, ProviderThrottled, ProviderUnavailable
from agent.providers.vault.objects import ReadKey
from agent.providers.vault.secret import VaultSecret, parse_secret
from agent.providers.vault.tokens import TokenCache, TokenKey
from agent.providers.vault.transport import (
    Reply,
    RequestHook,
    Target,
    Transport,
    response_limit,
)

log = structlog.get_logger(__name__)

DEFAULT_TIMEOUT_S = 30.0  # well below kubelet's 2 minute NodePublishVolume deadline


@dataclass(frozen=True, slots=True)
class Login:
    """Everything needed to log in as one pod identity."""

    target: Target
    auth_mount: str
    role: str
    key: TokenKey
    jwt: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Token:
    value: str = field(repr=False)
    fresh: bool  # minted by this call: a 403 with it is a real denial, not an expired token


class VaultClient:
    def __init__(
        self,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        on_request: RequestHook | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        self._transport = Transport(
            timeout=timeout,
            on_request=on_request,
            max_response_bytes=response_limit(max_payload_bytes),
        )
        self._tokens = TokenCache(clock=clock)

    async def close(self) -> None:
        await self._transport.close()
        self._tokens.clear()

    def open_sessions(self) -> int:
        """How many HTTP sessions are open (for tests and diagnostics)."""
        return self._transport.open_sessions()

    async def token(self, login: Login) -> Token:
        """A cached token for the identity, or a new one; concurrent callers share one login."""
        cached = self._tokens.get(login.key)
        if cached is not None:
            return Token(cached, fresh=False)
        async with self._tokens.lock(login.key):
            cached = self._tokens.get(login.key)
            if cached is not None:
                return Token(cached, fresh=False)
            value, ttl = await self._login(login)
            self._tokens.put(login.key, value, ttl)
            return Token(value, fresh=True)

    async def read(self, login: Login, token: Token, read: ReadKey) -> VaultSecret:
        """Send one read; on 403 with a cached token, log in again once and retry."""
        reply = await self._send(login, token, read)
        if reply.status in (401, 403) and not token.fresh:
            # The cached token may have been revoked or outlived its max TTL.
            self._tokens.invalidate(login.key, token.value)
            log.info("vault.token.retry", path=_where(read), role=login.role)
            token = await self.token(login)
            reply = await self._send(login, token, read)
        return _checked(reply, login, read, token)

    async def _send(self, login: Login, token: Token, read: ReadKey) -> Reply:
        return await self._transport.call(
            login.target,
            read.method,
            read.path,
            token=token.value,
            body=read.body,
            query=read.query,
        )

    async def _login(self, login: Login) -> tuple[str, float]:
        path = f"/v1/auth/{login.auth_mount}/login"
        body = json.dumps({"role": login.role, "jwt": login.jwt})
        reply = await self._transport.call(login.target, "POST", path, body=body)
        auth = reply.body.get("auth") if reply.body else None
        if reply.status != 200 or not isinstance(auth, dict) or not auth.get("client_token"):
            where = f"Vault login at {login.target.address} (auth/{login.auth_mount}, role "
            detail = _scrub(reply.describe(), login.jwt)
            raise _failure(reply, f"{where}{login.role!r}) failed: {detail}")
        ttl = float(auth.get("lease_duration") or 0)
        account = login.key.service_account  # "" for a pod without one
        log.info(
            "vault.login",
            address=login.target.address,
            auth_mount=login.auth_mount,
            role=login.role,
            namespace=login.key.pod_namespace,
            pod_uid=login.key.pod_uid,
            vault_namespace=login.target.namespace or None,
            service_account=shown_name(account) if account else "",
            ttl_s=ttl,
        )
        return str(auth["client_token"]), ttl


def _retryable(status: int) -> bool:
    return status >= 500 or status in (412, 429)


def _failure(reply: Reply, message: str) -> ProviderError:
    """429 (a rate limit quota) throttles; other retryable statuses are an outage."""
    if reply.status == 429:
        return ProviderThrottled(message, retry_after=reply.retry_after)
    return (ProviderUnavailable if _retryable(reply.status) else ProviderError)(message)


def _where(read: ReadKey) -> str:
    path = read.path.removeprefix("/v1/")
    return f"{path}?{urlencode(read.query)}" if read.query else path


def _scrub(text: str, *secrets: str) -> str:
    """Vault echoes little, but make sure no credential survives into a message."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


def _checked(reply: Reply, login: Login, read: ReadKey, token: Token) -> VaultSecret:
    where = _where(read)
    detail = _scrub(reply.describe(), login.jwt, token.value)
    if reply.status in (401, 403):
        extra = "" if reply.errors in ((), ("permission denied",)) else f": {detail}"
        raise ProviderError(f"permission denied reading {where} with role {login.role!r}{extra}")
    if reply.status == 404:
        extra = f": {detail}" if reply.errors else ""
        # Like the 403: the path and the role are what the pod's owner needs, never the token.
        raise ProviderError(f"secret not found at {where} with role {login.role!r}{extra}")
    if _retryable(reply.status):
        raise _failure(reply, f"Vault returned HTTP {reply.status} reading {where}: {detail}")
    if not 200 <= reply.status < 300:
        raise ProviderError(f"Vault rejected {read.method} {where}: HTTP {reply.status}: {detail}")
    # Decoded as hashicorp's provider decodes it (api.ParseSecret), which it then checks.
    secret = parse_secret(reply.body) if reply.body is not None else None
    if secret is None or secret.data is None:
        warnings = secret.warnings if secret is not None else []
        extra = f" (warnings: {_scrub('; '.join(warnings), token.value)})" if warnings else ""
        raise ProviderError(f"no data at {where} with role {login.role!r}{extra}")
    return secret
