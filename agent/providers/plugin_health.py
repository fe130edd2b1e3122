"""Asking plugins for their version: at start, to warm their clients, and for upstream's
``--provider-health-check``. Both only log what fails (a plugin not answering yet is not an
error here, and upstream's health check neither evicts nor affects readiness); neither raises.
The registry (registry.py) decides which plugins are asked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import structlog

from agent.errors import AgentError
from agent.ports import Provider

if TYPE_CHECKING:
    from agent.providers.plugin import PluginProvider

log = structlog.get_logger("agent.providers")


async def warm_plugins(
    directories: Sequence[str],
    wanted: Callable[[str], bool],
    load: Callable[[str], Awaitable[Provider]],
) -> None:
    """``load`` (``ProviderRegistry.load``) each plugin installed now in ``directories`` that
    is ``wanted``, side by side, and ask it for its version."""
    from agent.aio.threads import run_blocking
    from agent.providers.discovery import installed_plugin_names

    names = await run_blocking(installed_plugin_names, directories)
    plugins = [n for n in names if wanted(n)]
    # Side by side: one hung plugin must not use up the caller's start-up budget alone.
    await asyncio.gather(*(_warm_plugin(load, name) for name in plugins))


async def _warm_plugin(load: Callable[[str], Awaitable[Provider]], name: str) -> None:
    try:
        provider = await load(name)
        version = getattr(provider, "version", None)
        if version is not None:
            await version()
    except Exception as err:  # a plugin not answering yet is not an error here
        error = err.message if isinstance(err, AgentError) else type(err).__name__
        log.info("provider.plugin_warm_up_failed", provider=name, error=error)


async def health_check(plugins_by_name: Mapping[str, PluginProvider]) -> None:
    """Ask each plugin for its version at once; log each answer (DEBUG) or failure (WARNING)."""
    plugins = list(plugins_by_name.items())
    results = await asyncio.gather(
        *(plugin.version() for _, plugin in plugins), return_exceptions=True
    )
    for (name, _), result in zip(plugins, results, strict=True):
        if isinstance(result, BaseException):
            error = result.message if isinstance(result, AgentError) else type(result).__name__
            log.warning("plugin.health", provider=name, healthy=False, error=error)
        else:
            version, runtime, runtime_version = result
            log.debug(
                "plugin.health",
                provider=name,
                healthy=True,
                version=version,
                runtime=runtime,
                runtime_version=runtime_version,
            )
