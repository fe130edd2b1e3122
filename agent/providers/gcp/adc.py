"""``auth: provider-adc`` and the node-publish secret ``key.json``, through google-auth.

These two modes need Google's credential formats: Application Default Credentials (a key or
``external_account`` file, the gcloud file, the GCE metadata server) and a service-account key
signed into a JWT assertion. google-auth implements them and is imported only when an SPC uses
one of these modes. It is a synchronous library, so a refresh runs in a worker thread; its HTTP
requests are sent back to the event loop and travel through the provider's aiohttp session
(same proxy, trust store and timeouts as every other call), and the loop never blocks.

The refresh threads are this provider's own (up to ``MAX_REFRESHES``): a refresh spends its
thread waiting on Google's token endpoint, and in the loop's default executor a slow endpoint
and a few ``key.json`` volumes would take every worker the agent's file-system work needs,
holding up every other volume of every provider.

A ``key.json`` from a namespace's Secret must be a ``service_account`` key: other credential
types (``external_account``, ``impersonated_service_account``) can make the agent read node
files, call arbitrary URLs or run programs, which is why Go's ``CredentialsFromJSON`` that
upstream calls is deprecated. Its ``token_uri`` must be https (or loopback http).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agent.aio.threads import run_blocking_in
from agent.errors import ConfigError, ProviderError
from agent.providers.credential_cache import jwt_digest
from agent.providers.gcp.config import KEY_JSON
from agent.providers.gcp.federation import CLOUD_PLATFORM_SCOPE
from agent.providers.gcp.http import ApiFailure, GoogleHttp
from agent.providers.gcp.settings import check_token_url
from agent.providers.gcp.tokens import AccessToken, GoogleTokenCache, TokenKey, token_lifetime
from agent.providers.gcp.workload import json_object

if TYPE_CHECKING:
    from google.auth.credentials import Credentials
    from google.auth.transport import Request

_MAX_ERROR = 300


MAX_REFRESHES = 8  # google-auth refreshes in flight at once (distinct keys; same key: one)


class AdcCredentials:
    def __init__(
        self,
        http: GoogleHttp,
        cache: GoogleTokenCache,
        *,
        timeout: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._http = http
        self._cache = cache
        self._timeout = timeout
        self._clock = clock
        self._threads: ThreadPoolExecutor | None = None  # started on the first refresh

    def close(self) -> None:
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
            self._threads = None

    async def _in_thread(self, refresh: Callable[[], AccessToken]) -> AccessToken:
        if self._threads is None:
            self._threads = ThreadPoolExecutor(MAX_REFRESHES, thread_name_prefix="gcp-auth")
        return await run_blocking_in(self._threads, refresh)

    async def provider_token(self) -> AccessToken:
        """The agent's own Application Default Credentials (no per-pod isolation)."""
        return await self._cache.get_or_fetch(
            TokenKey("provider-adc"), lambda: self._timed(self._provider_refresh())
        )

    async def key_token(self, key_json: str) -> AccessToken:
        """A token for the service-account key of a node-publish secret."""
        info = _service_account_info(key_json)
        return await self._cache.get_or_fetch(
            TokenKey("key.json", jwt_sha256=jwt_digest(key_json)),
            lambda: self._timed(self._key_refresh(info)),
        )

    async def _timed(self, refreshing: Awaitable[AccessToken]) -> tuple[AccessToken, float]:
        return token_lifetime(await refreshing, self._clock())

    async def _provider_refresh(self) -> AccessToken:
        request = self._bridge()

        def refresh() -> AccessToken:
            import google.auth
            import google.auth.exceptions

            try:
                credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE], request=request)
                return _refreshed(credentials, request)
            except google.auth.exceptions.GoogleAuthError as err:
                what = "provider-adc: the agent's Application Default Credentials"
                raise _error(what, err) from None

        return await self._in_thread(refresh)

    async def _key_refresh(self, info: Mapping[str, Any]) -> AccessToken:
        request = self._bridge()

        def refresh() -> AccessToken:
            import google.auth.exceptions
            from google.oauth2 import service_account

            try:
                # google-auth's constructors and refresh are not annotated.
                credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                    info, scopes=[CLOUD_PLATFORM_SCOPE]
                )
                return _refreshed(credentials, request)
            except (google.auth.exceptions.GoogleAuthError, ValueError) as err:
                email = info.get("client_email", "?")
                what = f"node-publish secret {KEY_JSON} (service account {email})"
                raise _error(what, err) from None

        return await self._in_thread(refresh)

    def _bridge(self) -> Request:
        from agent.providers.gcp.adc_transport import LoopRequest

        return LoopRequest(asyncio.get_running_loop(), self._http, self._timeout)


def _service_account_info(key_json: str) -> dict[str, Any]:
    where = f"node-publish secret {KEY_JSON}"
    info = json_object(key_json, where)
    kind = info.get("type")
    if kind != "service_account":
        raise ProviderError(
            f"{where}: credentials type {kind!r} is not accepted; only a 'service_account' key "
            "(other types can make the agent read node files or call arbitrary URLs)"
        )
    for required in ("client_email", "private_key", "token_uri"):
        if not isinstance(info.get(required), str) or not info[required]:
            raise ProviderError(f"{where}: the key has no {required}")
    try:
        check_token_url(f"{where}: token_uri", info["token_uri"])
    except ConfigError as err:
        raise ProviderError(err.message) from None
    return info


def _refreshed(credentials: Credentials, request: Request) -> AccessToken:
    credentials.refresh(request)  # type: ignore[no-untyped-call]
    token = credentials.token
    if not isinstance(token, str) or not token:
        raise ProviderError("Google credentials refreshed without an access token")
    expiry = credentials.expiry  # naive UTC, as google-auth keeps it
    expires_at = expiry.replace(tzinfo=UTC).timestamp() if isinstance(expiry, datetime) else None
    return AccessToken(token, expires_at)


def _error(what: str, err: Exception) -> ProviderError:
    # google-auth puts the server's error first; later args may hold the raw response.
    first = err.args[0] if err.args else type(err).__name__
    message = " ".join(str(first).split())[:_MAX_ERROR]
    failure = _api_failure(err)
    if failure is not None:
        return failure.as_error(f"{what}: {message}")
    return ProviderError(f"{what}: {message}")


def _api_failure(err: BaseException) -> ApiFailure | None:
    """The HTTP failure in the chain (throttling, no connection, a refusal), if any."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, ApiFailure):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
