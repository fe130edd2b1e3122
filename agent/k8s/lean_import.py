"""Import the parts of kubernetes_asyncio the agent uses without its generated API.

``kubernetes_asyncio/__init__.py`` imports ``client``, whose ``__init__`` imports every API
class and all ~900 model classes: 36 to 60 MiB of RSS and up to 1.8 s on a small node, to get
classes the agent never calls (it sends and reads plain JSON). The config loaders
(kubeconfig, in-cluster, exec plugins, OIDC, token refresh) and the REST client it does use
are small modules of their own; only those package ``__init__`` files stand in the way.

So the three packages on that path (``kubernetes_asyncio``, ``.client``, ``.client.models``)
are registered as *deferred* packages: real package modules with their real ``__path__``,
whose own ``__init__`` runs only when someone asks for a name the ``__init__`` defines. A
submodule import (``from kubernetes_asyncio.client import rest``) loads just that submodule.
Anything else in the process that uses the full client still gets it, transparently, on its
first such attribute access: nothing is patched or copied. ``docs/benchmarks.md`` has the
numbers; ``tests/unit/test_k8s_lean_import.py`` checks the models stay unloaded.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from importlib.machinery import ModuleSpec
from types import ModuleType

_DEFERRED = ("kubernetes_asyncio", "kubernetes_asyncio.client", "kubernetes_asyncio.client.models")


def _deferred_package(name: str) -> ModuleType:
    existing = sys.modules.get(name)
    if existing is not None:
        return existing  # already imported (fully or deferred): use it as it is
    parent_name, _, child = name.rpartition(".")
    parent = sys.modules[parent_name] if parent_name else None
    # Every finder (a one-file bundle serves modules from its archive, not from a path); the
    # parent is already registered, so nothing else runs.
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        raise ImportError(f"{name} is not installed as a package", name=name)
    module = importlib.util.module_from_spec(spec)
    module.__getattr__ = _on_missing_attribute(module, spec)  # type: ignore[method-assign]
    sys.modules[name] = module
    if parent is not None:
        setattr(parent, child, module)
    return module


def _on_missing_attribute(module: ModuleType, spec: ModuleSpec) -> Callable[[str], object]:
    def __getattr__(attribute: str) -> object:
        if not attribute.startswith("__"):
            submodule = f"{spec.name}.{attribute}"
            if importlib.util.find_spec(submodule) is not None:
                return importlib.import_module(submodule)
        # A name the package's own __init__ defines: run it now, once, in this module.
        del module.__getattr__
        assert spec.loader is not None
        spec.loader.exec_module(module)
        return getattr(module, attribute)

    return __getattr__


def load() -> None:
    """Import the config loaders and the REST client; idempotent."""
    for name in _DEFERRED:
        _deferred_package(name)
    client = sys.modules["kubernetes_asyncio.client"]
    configuration = importlib.import_module("kubernetes_asyncio.client.configuration")
    api_client = importlib.import_module("kubernetes_asyncio.client.api_client")
    # kube_config.py does ``from kubernetes_asyncio.client import ApiClient, Configuration``.
    client.__dict__.setdefault("Configuration", configuration.Configuration)
    client.__dict__.setdefault("ApiClient", api_client.ApiClient)
    importlib.import_module("kubernetes_asyncio.config")


def models_loaded() -> bool:
    """True once anything in the process loaded a generated model module."""
    return any(name.startswith("kubernetes_asyncio.client.models.") for name in sys.modules)


load()

from kubernetes_asyncio.client.api_client import ApiClient  # noqa: E402
from kubernetes_asyncio.client.configuration import Configuration  # noqa: E402
from kubernetes_asyncio.client.exceptions import ApiException  # noqa: E402
from kubernetes_asyncio.config import incluster_config, kube_config  # noqa: E402
from kubernetes_asyncio.config.config_exception import ConfigException  # noqa: E402

__all__ = [
    "ApiClient",
    "ApiException",
    "ConfigException",
    "Configuration",
    "incluster_config",
    "kube_config",
    "load",
    "models_loaded",
]
