"""The real agent with one extra in-process provider, ``instant``, that answers immediately.

``objectCount`` and ``objectSize`` in the SecretProviderClass parameters decide how many files
of which size it returns, so a benchmark measures the agent itself (CSI, tmpfs, atomic writer,
status) rather than a secret store. Usage: ``python -m bench.instant_agent <serve flags>``.
"""

from __future__ import annotations

import sys

from agent.app import run
from agent.flags import parse_settings
from agent.model import MountResult, ObjectVersion, ProviderRequest, SecretFile
from agent.providers.registry import ProviderContext, ProviderRegistry


class InstantProvider:
    name = "instant"

    def __init__(self) -> None:
        self._cache: dict[tuple[int, int], MountResult] = {}

    async def mount(self, request: ProviderRequest) -> MountResult:
        count = int(request.attributes.get("objectCount", "1"))
        size = int(request.attributes.get("objectSize", "4096"))
        result = self._cache.get((count, size))
        if result is None:
            files = tuple(
                SecretFile(f"secret-{i:03d}", 0o640, bytes([65 + i % 26]) * size)
                for i in range(count)
            )
            versions = tuple(ObjectVersion(f"secret-{i:03d}", "1") for i in range(count))
            result = self._cache[(count, size)] = MountResult(files, versions)
        return result


def main() -> int:
    settings, _ = parse_settings(sys.argv[1:])
    provider = InstantProvider()

    def instant(_context: ProviderContext) -> InstantProvider:
        return provider

    registry = ProviderRegistry(
        timeout=settings.provider_timeout, version_key=b"bench" * 8, load_entry_points=False
    )
    registry.register("instant", instant)
    return run(settings, registry)


if __name__ == "__main__":
    sys.exit(main())
