"""Fetch a volume's objects: Secrets Manager one call per secret, concurrently; SSM Parameter
Store in GetParameters batches of 10 with decryption; the failover region on regional failure.

Failover (``failoverRegion``) is tried for an object (or an SSM batch) only when the primary
region failed as a region (5xx, throttling after retries, no connection, timeout), never on a
client fault such as AccessDenied or a missing object, which the failover region would answer
the same way. ASCP instead asks both regions every time; asking the second only when needed
halves the calls and keeps the same outcome.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from agent.providers.aws.credentials import AwsCredentials
from agent.providers.aws.endpoints import SECRETS_MANAGER, SSM
from agent.providers.aws.errors import AwsApiError, AwsRegionalError, describe
from agent.providers.aws.objects import AwsObject, Target
from agent.providers.aws.transport import AwsTransport

log = structlog.get_logger(__name__)

SSM_BATCH_SIZE = 10  # the most names GetParameters takes
MAX_PARALLEL_CALLS = 16

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Fetched:
    """One object's value as stored, with the version the region reported."""

    obj: AwsObject
    value: bytes
    version: str
    region: str


class Fetcher:
    def __init__(self, transport: AwsTransport, *, max_parallel: int = MAX_PARALLEL_CALLS) -> None:
        self._transport = transport
        self._max_parallel = max_parallel

    async def fetch_all(
        self,
        objects: Sequence[AwsObject],
        regions: Sequence[str],
        credentials: AwsCredentials,
    ) -> list[Fetched]:
        """Every object's value, in the order given; the first failure fails the volume."""
        limit = asyncio.Semaphore(self._max_parallel)
        calls: list[Callable[[], Awaitable[list[Fetched]]]] = []
        for obj in objects:
            if obj.service == "secretsmanager":
                calls.append(lambda obj=obj: self._secret(obj, regions, credentials))  # type: ignore[misc]
        parameters = [obj for obj in objects if obj.service == "ssmparameter"]
        for start in range(0, len(parameters), SSM_BATCH_SIZE):
            batch = parameters[start : start + SSM_BATCH_SIZE]
            calls.append(lambda batch=batch: self._parameters(batch, regions, credentials))  # type: ignore[misc]

        async def bounded(call: Callable[[], Awaitable[list[Fetched]]]) -> list[Fetched]:
            async with limit:
                return await call()

        results = await _all_or_first_error([bounded(call) for call in calls])
        by_index = {item.obj.index: item for result in results for item in result}
        return [by_index[obj.index] for obj in objects]

    async def _secret(
        self, obj: AwsObject, regions: Sequence[str], credentials: AwsCredentials
    ) -> list[Fetched]:
        async def get(region: str, use_failover: bool) -> list[Fetched]:
            target = obj.target(use_failover)
            params: dict[str, str] = {"SecretId": target.name}
            if target.version:
                params["VersionId"] = target.version
            if target.label:
                params["VersionStage"] = target.label
            reply = await self._transport.call_json(
                SECRETS_MANAGER, "GetSecretValue", region, params, credentials
            )
            return [
                Fetched(obj, _secret_value(reply, region), str(reply.get("VersionId", "")), region)
            ]

        return await _with_failover(f"secret {obj.name} (objects[{obj.index}])", regions, get)

    async def _parameters(
        self, batch: Sequence[AwsObject], regions: Sequence[str], credentials: AwsCredentials
    ) -> list[Fetched]:
        async def get(region: str, use_failover: bool) -> list[Fetched]:
            wanted = [(obj, obj.target(use_failover)) for obj in batch]
            names = list(dict.fromkeys(_selector_name(target) for _, target in wanted))
            params = {"Names": names, "WithDecryption": True}
            reply = await self._transport.call_json(
                SSM, "GetParameters", region, params, credentials
            )
            invalid = list(dict.fromkeys(str(p) for p in reply.get("InvalidParameters") or ()))
            if invalid:
                text = describe(
                    SSM.title, "GetParameters", region, "InvalidParameters", ", ".join(invalid)
                )
                raise AwsApiError(text, code="InvalidParameters", status=400)
            return _match_parameters(wanted, reply.get("Parameters") or [], region)

        names = ", ".join(obj.name for obj in batch)
        return await _with_failover(f"parameters {names}", regions, get)


async def _with_failover(
    subject: str, regions: Sequence[str], call: Callable[[str, bool], Awaitable[T]]
) -> T:
    try:
        return await call(regions[0], False)
    except AwsApiError as err:
        if not err.regional or len(regions) < 2:
            raise err.about(subject) from None
        primary = err
    log.warning(
        "aws.failover",
        subject=subject,
        region=regions[0],
        failover_region=regions[1],
        error=primary.code,
    )
    try:
        return await call(regions[1], True)
    except AwsApiError as err:
        raise err.about(f"{subject}: failed in {regions[0]} ({primary.code}) and") from None


def _secret_value(reply: dict[str, Any], region: str) -> bytes:
    text = reply.get("SecretString")
    if isinstance(text, str):
        return text.encode()
    binary = reply.get("SecretBinary")
    if isinstance(binary, str):
        try:
            return base64.b64decode(binary, validate=True)
        except (binascii.Error, ValueError):
            pass
        message = describe(SECRETS_MANAGER.title, "GetSecretValue", region, "InvalidResponse", "")
        raise AwsRegionalError(f"{message}SecretBinary is not base64")
    return b""


def _selector_name(target: Target) -> str:
    """ASCP's GetParameters name: ``name:version`` or ``name:label`` (never both for SSM)."""
    if target.version:
        return f"{target.name}:{target.version}"
    if target.label:
        return f"{target.name}:{target.label}"
    return target.name


def _match_parameters(
    wanted: Sequence[tuple[AwsObject, Target]], parameters: Sequence[Any], region: str
) -> list[Fetched]:
    """Pair each returned parameter with the objects that asked for it.

    AWS returns ``Name`` (or the ARN, for a shared parameter) and ``Selector`` (``:3`` or
    ``:label``); some implementations omit the selector, so a version number is matched too.
    """
    fetched: list[Fetched] = []
    pending = list(wanted)
    for parameter in parameters:
        if not isinstance(parameter, dict):
            continue
        version = str(parameter.get("Version", ""))
        value = str(parameter.get("Value", "")).encode()
        for obj, _target in _takers(pending, parameter, version):
            fetched.append(Fetched(obj, value, version, region))
            pending = [(o, t) for o, t in pending if o is not obj]
    if pending:
        missing = ", ".join(_selector_name(t) for _, t in pending)
        text = describe(SSM.title, "GetParameters", region, "InvalidResponse", "")
        raise AwsRegionalError(f"{text}no value returned for {missing}")
    return fetched


def _takers(
    pending: Sequence[tuple[AwsObject, Target]], parameter: dict[str, Any], version: str
) -> list[tuple[AwsObject, Target]]:
    names = {parameter.get("Name"), parameter.get("ARN")}
    same_name = [(o, t) for o, t in pending if t.name in names]
    selector = parameter.get("Selector")
    if isinstance(selector, str) and selector:
        wants = selector.removeprefix(":")
        return [(o, t) for o, t in same_name if (t.version or t.label) == wants]
    exact = [(o, t) for o, t in same_name if t.version == version]
    if exact:
        return exact
    # Without a selector, requests by label or for the latest value share the first answer.
    unversioned = [(o, t) for o, t in same_name if not t.version]
    first = unversioned[0][1] if unversioned else None
    return [(o, t) for o, t in unversioned if t == first]


async def _all_or_first_error(calls: Sequence[Awaitable[list[Fetched]]]) -> list[list[Fetched]]:
    """Run concurrently; on the first failure cancel the rest and raise that failure."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
