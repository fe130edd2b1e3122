"""What this build of the agent carries: every in-process provider, loaded once.

Providers import their libraries lazily, on the first SecretProviderClass that names them, so a
build that lacks a provider's library (a one-file bundle missing a hidden import, an image
without an extra) would only fail on a node, at publish time. ``secrets-store-agent providers``
loads each one now and says which work, for an operator checking an image or the build's own
test. Loading constructs each provider; a provider's constructor must not do I/O (its
connections open on the first mount), so this is safe on any node.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.errors import AgentError
from agent.providers.registry import ProviderRegistry


@dataclass(frozen=True, slots=True)
class ProviderLoad:
    """One provider's load: ``error`` is empty when it worked; ``seconds`` and ``rss_kib``
    (growth of the process's RSS, KiB) are what loading its libraries cost."""

    name: str
    module: str
    seconds: float
    rss_kib: int
    error: str = ""


def _rss_kib() -> int:
    """This process's resident set (Linux); 0 where /proc is absent (Windows)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in status.splitlines() if "VmRSS" in line), 0)


async def load_providers(registry: ProviderRegistry) -> list[ProviderLoad]:
    """Load every provider the registry knows (built-in and entry points), in name order."""
    loads = []
    for name in registry.names():
        before, started = _rss_kib(), time.perf_counter()
        try:
            provider = registry.get(name)
        except Exception as err:  # report every provider, whatever one of them raises
            reason = err.message if isinstance(err, AgentError) else f"{type(err).__name__}: {err}"
            loads.append(ProviderLoad(name, "", time.perf_counter() - started, 0, reason))
            continue
        elapsed = time.perf_counter() - started
        module = type(provider).__module__
        loads.append(ProviderLoad(name, module, elapsed, _rss_kib() - before))
    await registry.close()
    return loads


def describe(loads: Sequence[ProviderLoad]) -> list[str]:
    """One line per provider: ``NAME  ok  MODULE  12.3 ms  +1024 KiB`` or ``NAME  error: ...``."""
    width = max((len(load.name) for load in loads), default=0)
    lines = []
    for load in loads:
        if load.error:
            lines.append(f"{load.name:<{width}}  error: {load.error}")
        else:
            cost = f"{load.seconds * 1000:.1f} ms  +{load.rss_kib} KiB"
            lines.append(f"{load.name:<{width}}  ok  {load.module}  {cost}")
    return lines
