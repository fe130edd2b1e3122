"""Finds a provider by the name in ``SecretProviderClass.spec.provider``.

Built-in providers and third-party ones (Python entry points in the group
``secrets_store_agent.providers``) are constructed lazily on first use, so a node that only
uses Vault never pays for the others. An entry point names a factory taking a
:class:`ProviderContext` and returning an object that satisfies :class:`agent.ports.Provider`.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import structlog

from agent.errors import ProviderNotFound
from agent.ports import Provider

ENTRY_POINT_GROUP = "secrets_store_agent.providers"

log = structlog.get_logger("agent.providers")


@dataclass(frozen=True, slots=True)
class ProviderContext:
    """What the agent hands every provider factory."""

    name: str
    timeout: float
    version_key: bytes
    options: Mapping[str, str]


ProviderFactory = Callable[[ProviderContext], Provider]


def _vault(context: ProviderContext) -> Provider:
    from agent.providers.vault import VaultProvider

    return VaultProvider(
        name=context.name,
        default_address=context.options.get("vault_address") or None,
        version_key=context.version_key,
        timeout=context.timeout,
    )


BUILTIN_FACTORIES: Mapping[str, ProviderFactory] = {"vault": _vault, "openbao": _vault}


class ProviderRegistry:
    def __init__(
        self,
        *,
        timeout: float,
        version_key: bytes,
        options: Mapping[str, str] | None = None,
        factories: Mapping[str, ProviderFactory] | None = None,
        load_entry_points: bool = True,
    ) -> None:
        self._timeout = timeout
        self._version_key = version_key
        self._options = dict(options or {})
        self._factories: dict[str, ProviderFactory] = dict(
            BUILTIN_FACTORIES if factories is None else factories
        )
        if load_entry_points:
            self._factories.update(_entry_point_factories(self._factories))
        self._instances: dict[str, Provider] = {}

    def register(self, name: str, factory: ProviderFactory) -> None:
        self._factories[name] = factory
        self._instances.pop(name, None)

    def names(self) -> Sequence[str]:
        return sorted(self._factories)

    def get(self, name: str) -> Provider:
        instance = self._instances.get(name)
        if instance is not None:
            return instance
        factory = self._factories.get(name)
        if factory is None:
            raise ProviderNotFound(
                f"provider not found: provider {name!r} (available: {', '.join(self.names())})"
            )
        instance = factory(ProviderContext(name, self._timeout, self._version_key, self._options))
        self._instances[name] = instance
        return instance

    async def close(self) -> None:
        for name, instance in self._instances.items():
            close = getattr(instance, "close", None)
            if close is None:
                continue
            try:
                await close()
            except Exception as err:  # one provider failing to close must not block the rest
                log.warning("provider.close_failed", provider=name, error=type(err).__name__)
        self._instances.clear()


def _entry_point_factories(taken: Mapping[str, ProviderFactory]) -> dict[str, ProviderFactory]:
    found: dict[str, ProviderFactory] = {}
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry.name in taken:
            log.warning("provider.entry_point_shadowed", provider=entry.name, value=entry.value)
            continue
        try:
            found[entry.name] = entry.load()
        except Exception as err:  # a broken plugin must not stop the agent serving the others
            log.error("provider.entry_point_failed", provider=entry.name, error=repr(err))
    return found
