"""The real agent with one extra in-process provider, ``instant``, that answers immediately.

``objectCount`` and ``objectSize`` in the SecretProviderClass parameters decide how many files
of which size it returns, so a benchmark measures the agent itself (CSI, tmpfs, atomic writer,
status) rather than a secret store; ``revision`` changes every file's content and version (a
rotation in the store). Usage: ``python -m tests.support.instant_agent <serve flags>``; used by
``bench/`` and the fault tests (``tests/faults/``), which run it as the agent process.
"""

from __future__ import annotations

import sys

from agent.app import run
from agent.flags import parse_settings
from agent.model import MountResult, ObjectVersion, ProviderRequest, SecretFile
from agent.providers.registry import ProviderContext, ProviderRegistry


class InstantProvider:
    name = "instant"
    files_only = True  # as the built-in providers (ports.Provider)

    def __init__(self) -> None:
        self._cache: dict[tuple[int, int, str], MountResult] = {}

    async def mount(self, request: ProviderRequest) -> MountResult:
        count = int(request.attributes.get("objectCount", "1"))
        size = int(request.attributes.get("objectSize", "4096"))
        revision = request.attributes.get("revision", "1")
        result = self._cache.get((count, size, revision))
        if result is None:
            result = self._cache[(count, size, revision)] = generated(count, size, revision)
        return result


def generated(count: int, size: int, revision: str = "1") -> MountResult:
    """``count`` files ``secret-000``... of ``size`` bytes whose content depends on ``revision``."""
    files = tuple(
        SecretFile(f"secret-{i:03d}", 0o640, content(i, size, revision)) for i in range(count)
    )
    versions = tuple(ObjectVersion(f"secret-{i:03d}", revision) for i in range(count))
    return MountResult(files, versions)


def content(index: int, size: int, revision: str = "1") -> bytes:
    if revision == "1":
        return bytes([65 + index % 26]) * size  # the benchmark's historical content
    return (f"{revision}:{index}:".encode() * size)[:size]


def main() -> int:
    settings, _ = parse_settings(sys.argv[1:])
    provider = InstantProvider()

    def instant(_context: ProviderContext) -> InstantProvider:
        return provider

    registry = ProviderRegistry(
        timeout=settings.provider_timeout,
        version_key=b"bench" * 8,
        load_entry_points=False,
        # Upstream plugins too, as the agent finds them (bench/kubelet_bench.py uses one).
        plugin_directories=(*settings.additional_provider_volume_paths, settings.provider_volume),
    )
    registry.register("instant", instant)
    return run(settings, registry)


if __name__ == "__main__":
    sys.exit(main())
