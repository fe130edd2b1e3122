"""An in-process provider for tests and benchmarks: answers instantly with what it is told."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable

from agent.model import MountResult, ObjectVersion, ProviderRequest, SecretFile


class FakeProvider:
    """Returns ``files`` (path → bytes) with versions derived from content.

    Set ``error`` to make every mount fail, ``gate`` to hold mounts until it is set, and read
    ``requests`` to see what the agent sent.
    """

    def __init__(self, name: str = "fake", files: dict[str, bytes] | None = None) -> None:
        self.name = name
        self.files: dict[str, bytes] = dict(files or {"username": b"admin", "password": b"s3cr3t"})
        self.modes: dict[str, int] = {}
        self.error: BaseException | None = None
        self.gate: asyncio.Event | None = None
        self.on_mount: Callable[[ProviderRequest], None] | None = None
        self.requests: list[ProviderRequest] = []
        self.in_flight = 0

    async def mount(self, request: ProviderRequest) -> MountResult:
        self.requests.append(request)
        self.in_flight += 1
        try:
            if self.on_mount is not None:
                self.on_mount(request)
            if self.gate is not None:
                await self.gate.wait()
            if self.error is not None:
                raise self.error
            return self.result(request.default_mode)
        finally:
            self.in_flight -= 1

    def result(self, default_mode: int = 0o644) -> MountResult:
        files = tuple(
            SecretFile(path, self.modes.get(path, default_mode), data)
            for path, data in self.files.items()
        )
        versions = tuple(
            ObjectVersion(path, hashlib.sha256(data).hexdigest()[:16])
            for path, data in self.files.items()
        )
        return MountResult(files, versions)


def entry_point_factory(context: object) -> FakeProvider:
    """What a third-party package names in the ``secrets_store_agent.providers`` group."""
    return FakeProvider(name=str(getattr(context, "name", "fake")))
