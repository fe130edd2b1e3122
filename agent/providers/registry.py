"""Finds a provider by the name in ``SecretProviderClass.spec.provider``.

Built-in providers and third-party ones (Python entry points in the group
``secrets_store_agent.providers``) are constructed lazily on first use, so a node that only
uses Vault never pays for the others; on the event loop, :meth:`ProviderRegistry.load` imports
a built-in provider's package off the loop first (loading.py). An entry point names a factory
taking a :class:`ProviderContext` and returning an object that satisfies
:class:`agent.ports.Provider` (the context and the built-in factories are factories.py's).
Any other name is looked up as an upstream provider plugin socket (``<dir>/<name>.sock``).

``prefer_plugins`` names providers for which an installed plugin wins over the built-in of the
same name (flag ``--prefer-plugin-providers``): while ``<dir>/<name>.sock`` exists the plugin
serves, otherwise the built-in does, so a cluster can keep its provider DaemonSet during a
migration and drop it later without touching the agent. A socket file nobody listens on (a
crashed plugin's) is served by the built-in too, at once, logged once per episode.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import structlog

from agent.config import DEFAULT_MAX_PAYLOAD_BYTES
from agent.errors import ProviderNotFound
from agent.ports import NodeLabelSource, Provider, ServiceAccountSource
from agent.providers import plugin_health
from agent.providers.discovery import SocketDirectories
from agent.providers.factories import (
    BUILTIN_FACTORIES,
    PLUGIN_DEADLINE_SHARE,
    ProviderContext,
    ProviderFactory,
    entry_point_factories,
)
from agent.providers.loading import LazyFactory, PackageImports

if TYPE_CHECKING:
    from agent.platform.afunix import UnixSockets
    from agent.providers.plugin import PluginProvider

# The extension API's documented import path (tests/example_provider/README.md).
__all__ = ["ProviderContext", "ProviderFactory", "ProviderRegistry"]

log = structlog.get_logger("agent.providers")


PLUGIN_MODULE = "agent.providers.plugin"
DEFAULT_MAX_RECV_BYTES = 4 * 1024 * 1024


class ProviderRegistry:
    def __init__(
        self,
        *,
        timeout: float,
        version_key: bytes,
        options: Mapping[str, str] | None = None,
        factories: Mapping[str, ProviderFactory] | None = None,
        load_entry_points: bool = True,
        plugin_directories: Sequence[str] = (),
        max_recv_bytes: int = DEFAULT_MAX_RECV_BYTES,
        trusted_dirs: Sequence[str] = (),
        service_accounts: ServiceAccountSource | None = None,
        prefer_plugins: Sequence[str] = (),
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        unix_sockets: UnixSockets | None = None,
        node_labels: NodeLabelSource | None = None,
    ) -> None:
        self._unix_sockets = unix_sockets  # None: this machine's (agent.platform)
        self._max_payload_bytes = max_payload_bytes
        self._node_labels = node_labels
        self._prefer_plugins = frozenset(prefer_plugins)
        self._trusted_dirs = tuple(trusted_dirs)
        self._service_accounts = service_accounts
        self._timeout = timeout
        self._version_key = version_key
        self._options = dict(options or {})
        self._factories: dict[str, ProviderFactory] = dict(
            BUILTIN_FACTORIES if factories is None else factories
        )
        if load_entry_points:
            self._factories.update(entry_point_factories(self._factories))
        for name in sorted(self._prefer_plugins - set(self._factories)):
            # A plugin serves a name without a built-in anyway: the preference changes nothing,
            # and is most likely a misspelling (names are case-sensitive: "AWS" is not "aws").
            log.warning("provider.prefer_unknown", provider=name, built_in=self.names())
        self._instances: dict[str, Provider] = {}
        self._plugin_directories = tuple(plugin_directories)
        self._max_recv_bytes = max_recv_bytes
        self._plugins: dict[str, PluginProvider] = {}
        self._retired: list[PluginProvider] = []  # preferred plugins moved; closed at close()
        self._gone: set[str] = set()  # preferred plugins whose socket went: the built-in serves
        self._imports = PackageImports()

        self._directories = SocketDirectories()  # warns of directories others may write

    def use_service_accounts(self, source: ServiceAccountSource) -> None:
        """Where providers built from now on read service accounts, unless the registry was
        given one (the composition root wires the mode's source into a registry it was
        handed)."""
        if self._service_accounts is None:
            self._service_accounts = source

    def use_node_labels(self, source: NodeLabelSource | None) -> None:
        """Where providers built from now on read this node's labels, unless the registry was
        given a source (as :meth:`use_service_accounts`)."""
        if self._node_labels is None:
            self._node_labels = source

    def set_version_key(self, key: bytes) -> None:
        """The HMAC key for providers built from now on (Kubernetes mode loads it from a Secret
        at start, before the CSI socket serves, so no provider exists yet)."""
        self._version_key = key
        if self._instances:
            log.warning("provider.version_key_late", built=sorted(self._instances))

    def register(self, name: str, factory: ProviderFactory) -> None:
        self._factories[name] = factory
        self._instances.pop(name, None)
        self._plugins.pop(name, None)

    def names(self) -> Sequence[str]:
        return sorted(self._factories)

    async def load(self, name: str) -> Provider:
        """:meth:`get` for callers on the event loop: the first use of a provider imports its
        package off the loop (loading.py), which keeps serving every other volume meanwhile.
        Construction stays on the loop.

        Raises what :meth:`get` raises (ProviderNotFound, or the factory's own error).
        """
        module = self._module_to_import(name)
        if module is not None:
            await self._imports.ensure(module)
        return self.get(name)

    def _module_to_import(self, name: str) -> str | None:
        if name in self._instances and name not in self._prefer_plugins:
            return None
        factory = self._factories.get(name)
        if factory is None or name in self._prefer_plugins:
            module = PLUGIN_MODULE if self._plugin_directories else None
        else:
            module = factory.module if isinstance(factory, LazyFactory) else None
        return module

    def get(self, name: str) -> Provider:
        if name in self._prefer_plugins:
            preferred = self._installed_plugin(name)
            if preferred is not None:
                return preferred
        instance = self._instances.get(name)
        if instance is not None:
            return instance
        factory = self._factories.get(name)
        if factory is None:
            return self._plugin(name)
        return self._built_in(name, factory)

    def _built_in(self, name: str, factory: ProviderFactory) -> Provider:
        context = ProviderContext(
            name,
            self._timeout,
            self._version_key,
            self._options,
            self._trusted_dirs,
            self._service_accounts,
            self._max_payload_bytes,
            self._node_labels,
        )
        instance = factory(context)
        self._instances[name] = instance
        return instance

    def _installed_plugin(self, name: str) -> Provider | None:
        """The plugin of a name in ``prefer_plugins`` while its socket exists (checked on every
        call: the DaemonSet may come and go); None lets the built-in serve."""
        from agent.providers.discovery import find_plugin_socket

        socket = find_plugin_socket(name, self._plugin_directories)
        plugin = self._plugins.get(name)
        if socket is None:
            if plugin is not None and name in self._factories and name not in self._gone:
                log.info("provider.plugin_gone", provider=name, using="built-in")
                self._gone.add(name)
            return None
        # A plugin back at the same path keeps its client (grpclib reconnects), so a
        # DaemonSet that comes and goes does not pile up channels.
        back = name in self._gone
        self._gone.discard(name)
        if plugin is None or plugin.socket_path != socket:
            self._directories.check(name, socket)
            if plugin is not None:
                self._retired.append(plugin)
            plugin = self._plugins[name] = self._connect(name, socket, preferred=True)
            back = True
        if back:
            log.info("provider.plugin_preferred", provider=name, socket=socket)
        return plugin

    def _connect(self, name: str, socket: str, *, preferred: bool = False) -> PluginProvider:
        # Imported here so that grpclib stays out of this module (import-linter contract).
        from agent.providers.plugin import PluginProvider

        async def built_in() -> Provider:
            # A socket file a crashed plugin left: the built-in serves until one listens.
            return self._instances.get(name) or self._built_in(name, self._factories[name])

        # The core cancels a provider call at the same timeout; ending the plugin's retries a
        # little earlier lets its own error (socket unreachable, last gRPC status) be reported.
        budget = self._timeout * PLUGIN_DEADLINE_SHARE
        return PluginProvider(
            name,
            socket,
            max_recv_bytes=self._max_recv_bytes,
            timeout=budget,
            fallback=built_in if preferred and name in self._factories else None,
            sockets=self._unix_sockets,
        )

    def _plugin(self, name: str) -> Provider:
        """An upstream plugin DaemonSet's socket; looked up again on every miss, because the
        DaemonSet may start after the agent. A found plugin's client is kept (as upstream)."""
        missing = f"provider not found: provider {name!r} (available: {', '.join(self.names())})"
        if not self._plugin_directories:
            raise ProviderNotFound(missing)
        from agent.providers.discovery import find_plugin_socket, socket_name

        socket = find_plugin_socket(name, self._plugin_directories)
        if socket is None:
            directories = ", ".join(self._plugin_directories)
            raise ProviderNotFound(f"{missing} and no socket {socket_name(name)} in {directories}")
        self._directories.check(name, socket)
        plugin = self._connect(name, socket)
        log.info("provider.plugin_found", provider=name, socket=socket)
        self._instances[name] = self._plugins[name] = plugin
        return plugin

    async def warm_plugins(self) -> None:
        """Connect to every plugin socket installed now and ask it for its version, so the
        first publish through it finds its client built, its channel connected and grpclib's
        code paths warm (a first publish paid ~10 ms for them). Names a built-in serves are left
        alone (its libraries load only when an SPC uses it). Failures are logged, never raised:
        the first publish then connects as before."""
        await plugin_health.warm_plugins(
            self._plugin_directories,
            lambda n: n not in self._factories or n in self._prefer_plugins,
            self.load,
        )

    async def health_check(self) -> None:
        """Upstream's ``--provider-health-check``: ask each known plugin for its version
        (``PluginProvider.version`` has upstream's 5 s timeout).

        Only logged (no eviction, no readiness effect), as upstream; never raises.
        """
        await plugin_health.health_check(self._plugins)

    async def close(self) -> None:
        owned: dict[int, tuple[str, Provider]] = {}
        for name, instance in [*self._instances.items(), *self._plugins.items()]:
            owned[id(instance)] = (name, instance)
        for plugin in self._retired:
            owned[id(plugin)] = (plugin.name, plugin)
        for name, instance in owned.values():
            close = getattr(instance, "close", None)
            if close is None:
                continue
            try:
                await close()
            except Exception as err:  # one provider failing to close must not block the rest
                log.warning("provider.close_failed", provider=name, error=type(err).__name__)
        self._instances.clear()
        self._plugins.clear()
        self._retired.clear()
