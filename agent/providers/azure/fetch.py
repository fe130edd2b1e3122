"""Fetching one volume's objects: one GET per object version, all of them concurrently.

An object with ``objectVersionHistory`` > 1 is first listed (its enabled versions, newest
``attributes.created`` first); the requested version (or the newest) and the ones before it
become ``<file>/0``, ``<file>/1``, ... up to the history count, as upstream documents. Upstream
also writes one version more than asked when more exist, and nothing at all when the requested
version is not listed; here the count is exact and a missing version is an error naming the
field. The volume is all-or-nothing: the first failure cancels the rest.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from agent.errors import ProviderError
from agent.providers.azure.keyvault import KeyVaultClient, ObjectVersionInfo, version_of
from agent.providers.azure.objects import KEY, KeyVaultObject, fail
from agent.providers.common.failures import first_error

# Requests of one volume run concurrently, but a volume listing hundreds of objects should not
# open hundreds of connections to one vault (which allows 2000 requests per 10 s).
MAX_PARALLEL_REQUESTS = 16


@dataclass(frozen=True, slots=True)
class Target:
    """One object version to fetch and where it goes: file name and status id."""

    obj: KeyVaultObject
    file_name: str
    uid: str
    version: str  # "" for the latest


@dataclass(frozen=True, slots=True)
class Fetched:
    target: Target
    version: str  # the version Key Vault answered with
    bundle: dict[str, Any]


def history_targets(obj: KeyVaultObject, listed: list[ObjectVersionInfo]) -> list[Target]:
    """The versions of ``obj`` to mount, from its listing."""
    ordered = sorted(listed, key=lambda v: v.created, reverse=True)  # stable for equal dates
    start = 0
    if obj.version:
        start = next((i for i, v in enumerate(ordered) if v.version == obj.version), -1)
        if start < 0:
            problem = f"version {obj.version} is not an enabled version of {obj.uid}"
            raise fail(obj.index, "objectVersion", problem)
    chosen = ordered[start : start + obj.history]
    return [
        Target(obj, f"{obj.file_name}/{i}", f"{obj.uid}/{i}", v.version)
        for i, v in enumerate(chosen)
    ]


def _answered_version(target: Target, bundle: dict[str, Any]) -> str:
    identifier = bundle.get("id")
    if target.obj.object_type == KEY:
        key = bundle.get("key")
        identifier = key.get("kid") if isinstance(key, dict) else None
    version = version_of(identifier)
    if not version:
        obj = target.obj
        raise ProviderError(f"{obj.describe(target.version)}: {obj.object_type} id is nil")
    return version


async def fetch_volume(
    client: KeyVaultClient, objects: tuple[KeyVaultObject, ...]
) -> list[Fetched]:
    """Every object's bundles, in the order of ``objects`` (history versions in index order)."""
    limit = asyncio.Semaphore(MAX_PARALLEL_REQUESTS)

    async def get(target: Target) -> Fetched:
        async with limit:
            bundle = await client.get(target.obj, target.version)
        return Fetched(target, _answered_version(target, bundle), bundle)

    async def one(obj: KeyVaultObject) -> list[Fetched]:
        if not obj.syncs_history:
            return [await get(Target(obj, obj.file_name, obj.uid, obj.version))]
        async with limit:
            listed = await client.versions(obj)
        targets = history_targets(obj, listed)
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(get(t)) for t in targets]
        return [task.result() for task in tasks]

    try:
        async with asyncio.TaskGroup() as group:
            per_object = [group.create_task(one(obj)) for obj in objects]
    except BaseExceptionGroup as errors:
        raise first_error(errors, "Key Vault") from None
    return [fetched for task in per_object for fetched in task.result()]
