"""The in-process GCP provider: Secret Manager and Parameter Manager objects in, files out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TypeGuard

import structlog

from agent.aio.threads import run_blocking
from agent.errors import AgentError, ProviderError, ProviderThrottled, ProviderUnavailable
from agent.model import MountResult, ObjectVersion, PodIdentity, ProviderRequest, SecretFile
from agent.ports import ServiceAccountSource
from agent.providers.common.deadline import deadline
from agent.providers.common.parameters import ConfigWarnings
from agent.providers.common.parsed import parsed
from agent.providers.gcp.adc import AdcCredentials
from agent.providers.gcp.config import MountConfig, SecretEntry, parse_config, secrets_from
from agent.providers.gcp.extract import extract_json_key, extract_yaml_key
from agent.providers.gcp.federation import PodCredentials
from agent.providers.gcp.fetch import Fetched, fetch
from agent.providers.gcp.http import UNAUTHENTICATED, ApiFailure, GoogleHttp, RequestHook, Sleep
from agent.providers.gcp.resources import Resource
from agent.providers.gcp.settings import GcpSettings, load_settings
from agent.providers.gcp.tokens import AccessToken, new_cache
from agent.providers.gcp.workload import WorkloadIdentityResolver

log = structlog.get_logger(__name__)

# Upstream starts one goroutine per object; a bound keeps a volume of hundreds of objects from
# opening hundreds of connections at once.
MAX_PARALLEL_FETCHES = 16
# Finish a little before the core's deadline, so the message says which service was slow.
_DEADLINE_SHARE = 0.95
_BACKSTOP_SHARE = 0.975  # after the deadline, before the core's own


class GcpProvider:
    """Implements :class:`agent.ports.Provider` for ``provider: gcp``.

    Settings come from the environment (settings.py) unless given. ``clock`` (wall-clock
    seconds) and ``sleep`` let tests drive token expiry and retry backoff without waiting.
    """

    files_only = True  # returns every file, never writes into the target (ports.Provider)

    def __init__(
        self,
        name: str = "gcp",
        *,
        timeout: float = 30.0,
        service_accounts: ServiceAccountSource | None = None,
        settings: GcpSettings | None = None,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
        on_request: RequestHook | None = None,
    ) -> None:
        self.name = name
        self._config_warnings = ConfigWarnings("gcp.config_warning")
        self._settings = settings or load_settings(env)
        self._timeout = timeout
        self._http = GoogleHttp(timeout=timeout, sleep=sleep, on_request=on_request)
        self.tokens = new_cache(clock)  # tests read its size
        self._pods = PodCredentials(
            endpoints=self._settings.endpoints,
            http=self._http,
            resolver=WorkloadIdentityResolver(self._settings, self._http),
            service_accounts=service_accounts,
            cache=self.tokens,
            clock=clock,
        )
        self._adc = AdcCredentials(self._http, self.tokens, timeout=timeout, clock=clock)

    async def close(self) -> None:
        await self._http.close()
        self._adc.close()

    async def mount(self, request: ProviderRequest) -> MountResult:
        started = time.monotonic()
        config = await self._config(request)
        self._config_warnings.log(self.name, request, config.warnings)
        budget = self._timeout * _DEADLINE_SHARE
        try:
            # The deadline ends every request and retry in time, with Google's last answer;
            # the timeout is a backstop (google-auth refreshes run in a thread).
            with deadline(budget):
                async with asyncio.timeout(self._timeout * _BACKSTOP_SHARE):
                    token = await self._token(config, request.identity)
                    fetched = await self._fetch_all(config.secrets, token)
        except TimeoutError:
            raise ProviderUnavailable(
                f"Google APIs did not answer within {budget:.3g}s ({len(config.secrets)} secrets)"
            ) from None
        result = await _result(config, fetched, request.default_mode)
        # Debug (-v=1): node_publish.completed says it at -v=0, and rotation calls mount at
        # every poll, where an unchanged volume is silent at -v=0 (rotation.fetched is -v=1).
        log.debug(
            "gcp.mount.completed",
            provider=self.name,
            namespace=request.identity.namespace,
            pod=request.identity.name,
            auth=config.auth,
            objects=len(result.files),
            fetches=len(fetched),
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )
        return result

    async def _config(self, request: ProviderRequest) -> MountConfig:
        text = request.attributes.get("secrets")
        return parse_config(
            request.attributes,
            request.secrets,
            allow_node_publish_secret=self._settings.allow_node_publish_secret,
            secrets=None if text is None else await parsed(secrets_from, text),
        )

    async def _token(self, config: MountConfig, pod: PodIdentity) -> AccessToken:
        if config.auth == "provider-adc":
            return await self._adc.provider_token()
        if config.auth == "key.json":
            return await self._adc.key_token(config.key_json)
        return await self._pods.token(pod)

    async def _fetch_all(
        self, entries: Sequence[SecretEntry], token: AccessToken
    ) -> dict[Resource, Fetched]:
        """Each distinct resource once (so two files of one ``latest`` see the same version),
        concurrently; every failure is reported, and any failure fails the mount."""
        limit = asyncio.Semaphore(MAX_PARALLEL_FETCHES)
        users: dict[Resource, list[SecretEntry]] = {}
        for entry in entries:
            users.setdefault(entry.resource, []).append(entry)

        async def one(resource: Resource) -> Fetched:
            async with limit:
                return await fetch(self._http, self._settings.endpoints, resource, token.value)

        resources = list(users)
        outcomes = await asyncio.gather(*(one(r) for r in resources), return_exceptions=True)
        fetched: dict[Resource, Fetched] = {}
        failures: list[tuple[list[SecretEntry], BaseException]] = []
        for resource, outcome in zip(resources, outcomes, strict=True):
            if isinstance(outcome, Fetched):
                fetched[resource] = outcome
            else:
                failures.append((users[resource], outcome))
        if failures:
            if any(_is_unauthenticated(error) for _, error in failures):
                self.tokens.forget(token)
            raise _failed(failures, len(resources))
        return fetched


async def _result(
    config: MountConfig, fetched: Mapping[Resource, Fetched], default_mode: int
) -> MountResult:
    files: list[SecretFile] = []
    versions: list[ObjectVersion] = []
    for entry in config.secrets:
        got = fetched[entry.resource]
        contents = got.payload
        if entry.extract_json_key:
            contents = extract_json_key(entry.field, contents, entry.extract_json_key)
        elif entry.extract_yaml_key:
            # Parameter Manager payloads reach 1 MiB; PyYAML parses that slowly: off the loop.
            key = entry.extract_yaml_key
            contents = await run_blocking(extract_yaml_key, entry.field, contents, key)
        mode = entry.mode if entry.mode is not None else default_mode
        files.append(SecretFile(path=entry.path, mode=mode, contents=contents))
        # Upstream: the id is the resourceName as written, the version its resolved name.
        versions.append(ObjectVersion(id=entry.resource.name, version=got.version))
    return MountResult(files=tuple(files), versions=tuple(versions))


def _failed(failures: list[tuple[list[SecretEntry], BaseException]], total: int) -> BaseException:
    for _, error in failures:
        if not isinstance(error, Exception):
            return error  # cancellation and friends propagate unchanged
    lines = []
    for entries, error in failures:
        fields = ", ".join(entry.field for entry in entries)
        lines.append(f"{fields} {entries[0].resource.name}: {_describe(error)}")
    prefix = f"{len(failures)} of {total} secrets failed: " if total > 1 else ""
    errors, message = [error for _, error in failures], prefix + "; ".join(lines)
    throttled = [error for error in errors if _is_throttled(error)]
    if throttled and all(_is_transient(error) for error in errors):
        hints = [error.retry_after for error in throttled if error.retry_after is not None]
        return ProviderThrottled(message, retry_after=max(hints, default=None))
    return _error_class(errors)(message)


def _error_class(errors: Sequence[BaseException]) -> type[ProviderError]:
    """Retriable only when every failure is; one shared ProviderError subclass is kept."""
    if all(_is_transient(error) for error in errors):
        return ProviderUnavailable
    kinds = {type(error) for error in errors}
    if len(kinds) == 1:
        (kind,) = kinds
        if issubclass(kind, ProviderError):
            return kind
    return ProviderError


def _describe(error: BaseException) -> str:
    if isinstance(error, ApiFailure):
        return error.describe()
    if isinstance(error, AgentError):
        return error.message
    # An unexpected bug: its type for debugging, never its text (it could quote a token).
    log.error("gcp.fetch_failed", error=type(error).__qualname__, module=type(error).__module__)
    return f"unexpected {type(error).__name__}"


def _is_throttled(error: BaseException) -> TypeGuard[ApiFailure | ProviderThrottled]:
    return isinstance(error, ProviderThrottled) or (
        isinstance(error, ApiFailure) and error.throttled
    )


def _is_unauthenticated(error: BaseException) -> bool:
    return isinstance(error, ApiFailure) and error.http_status == UNAUTHENTICATED


def _is_transient(error: BaseException) -> bool:
    if isinstance(error, ApiFailure):
        return error.retriable
    return isinstance(error, ProviderUnavailable)
