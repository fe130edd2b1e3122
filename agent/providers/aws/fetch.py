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
import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog

from agent.providers.aws.credentials import AwsCredentials
from agent.providers.aws.endpoints import SECRETS_MANAGER, SSM
from agent.providers.aws.errors import AwsApiError, AwsRegionalError, describe
from agent.providers.aws.objects import AwsObject, Target
from agent.providers.aws.regions import primary_share
from agent.providers.aws.transport import AwsTransport
from agent.providers.common.failures import first_error

log = structlog.get_logger(__name__)

SSM_BATCH_SIZE = 10  # the most names GetParameters takes
MAX_PARALLEL_CALLS = 16

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Fetched:
    """One object's value as stored, with the version the region reported."""

    obj: AwsObject
    value: bytes = field(repr=False)
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
        calls: list[Callable[[], Awaitable[list[Fetched]]]] = [
            functools.partial(self._secret, obj, regions, credentials)
            for obj in objects
            if obj.service == "secretsmanager"
        ]
        parameters = [obj for obj in objects if obj.service == "ssmparameter"]
        calls += [
            functools.partial(self._parameters, batch, regions, credentials)
            for batch in ssm_batches(parameters)
        ]

        async def bounded(call: Callable[[], Awaitable[list[Fetched]]]) -> list[Fetched]:
            async with limit:
                return await call()

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(bounded(call)) for call in calls]
        except BaseExceptionGroup as failures:
            # All or nothing: the first failure in SPC order, the rest were cancelled.
            raise first_error(failures, "AWS") from None
        results = [task.result() for task in tasks]
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
                    SSM.title,
                    "GetParameters",
                    region,
                    "InvalidParameters",
                    _invalid(wanted, invalid),
                )
                raise AwsApiError(text, code="InvalidParameters", status=400)
            return _match_parameters(wanted, reply.get("Parameters") or [], region)

        names = ", ".join(obj.name for obj in batch)
        return await _with_failover(f"parameters {names}", regions, get)


async def _with_failover(
    subject: str, regions: Sequence[str], call: Callable[[str, bool], Awaitable[T]]
) -> T:
    try:
        with primary_share(regions):
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
        message = describe(
            SECRETS_MANAGER.title,
            "GetSecretValue",
            region,
            "InvalidResponse",
            "SecretBinary is not base64",
        )
        raise AwsRegionalError(message)
    return b""


def _invalid(wanted: Sequence[tuple[AwsObject, Target]], invalid: Sequence[str]) -> str:
    """``/a:3 (objects[2])``, ...: what GetParameters could not find (a name, or a version or
    label of it), with the objects that asked for it, since a batch holds up to 10."""
    asked: dict[str, list[str]] = {}
    for obj, target in wanted:
        asked.setdefault(_selector_name(target), []).append(f"objects[{obj.index}]")
    named = [f"{name} ({', '.join(asked[name])})" if name in asked else name for name in invalid]
    return f"{', '.join(named)}: no such parameter, version or label"


def _selector_name(target: Target) -> str:
    """ASCP's GetParameters name: ``name:version`` or ``name:label`` (never both for SSM)."""
    if target.version:
        return f"{target.name}:{target.version}"
    if target.label:
        return f"{target.name}:{target.label}"
    return target.name


def ssm_batches(objects: Sequence[AwsObject]) -> list[list[AwsObject]]:
    """Group parameters into GetParameters calls of at most 10 names, in SPC order.

    Two versions of one parameter (``/db``, ``/db:1``) never share a call: a reply says which
    selector it answers only in its optional ``Selector`` field, which not every implementation
    fills in, so each call asks for each parameter name once. Objects asking for exactly the
    same name and selector share one entry.
    """
    batches: list[list[AwsObject]] = []
    plans: list[tuple[dict[str, str], dict[str, str]]] = []  # per region: name -> selector name
    for obj in objects:
        wanted = [(obj.primary.name, _selector_name(obj.primary))]
        wanted.append((obj.failover.name, _selector_name(obj.failover)))
        chosen = next((i for i, plan in enumerate(plans) if _fits(plan, wanted)), None)
        if chosen is None:
            chosen = len(batches)
            batches.append([])
            plans.append(({}, {}))
        batches[chosen].append(obj)
        for region_plan, (name, selector) in zip(plans[chosen], wanted, strict=True):
            region_plan[name] = selector
    return batches


def _fits(plan: tuple[dict[str, str], dict[str, str]], wanted: list[tuple[str, str]]) -> bool:
    for region_plan, (name, selector) in zip(plan, wanted, strict=True):
        known = region_plan.get(name)
        if known is not None and known != selector:
            return False
        if known is None and len(region_plan) >= SSM_BATCH_SIZE:
            return False
    return True


def _match_parameters(
    wanted: Sequence[tuple[AwsObject, Target]], parameters: Sequence[Any], region: str
) -> list[Fetched]:
    """Pair each returned parameter (by ``Name``, or ``ARN`` for one asked for by ARN) with the
    objects that asked for it; a batch names each parameter once (see ssm_batches)."""
    fetched: list[Fetched] = []
    pending = list(wanted)
    for parameter in parameters:
        if not isinstance(parameter, dict):
            continue
        names = {parameter.get("Name"), parameter.get("ARN")}
        version = str(parameter.get("Version", ""))
        value = str(parameter.get("Value", "")).encode()
        takers = [(obj, target) for obj, target in pending if target.name in names]
        fetched.extend(Fetched(obj, value, version, region) for obj, _ in takers)
        pending = [item for item in pending if item not in takers]
    if pending:
        missing = ", ".join(_selector_name(t) for _, t in pending)
        text = describe(
            SSM.title,
            "GetParameters",
            region,
            "InvalidResponse",
            f"no value returned for {missing}",
        )
        raise AwsRegionalError(text)
    return fetched
