"""The registry on the event loop: a provider's first use imports its package in the agent's
library-loading thread, so a provider being imported holds up neither the event loop nor the
providers already loaded."""

from __future__ import annotations

import asyncio
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
from collections.abc import Iterator
from types import ModuleType

import pytest

from agent.providers.loading import LazyFactory
from agent.providers.registry import ProviderRegistry
from tests.support.fake_provider import FakeProvider
from tests.support.loop_thread import loop_thread_calls

HELD = "tests_held_provider_package"  # a package whose import waits until the test allows it
FAILURE_BOUND_S = 30.0  # only reached when an import blocks the loop


class HeldImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves module ``HELD``; executing it waits for ``release`` (a slow import, held)."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.threads: list[str] = []

    def find_spec(
        self, fullname: str, path: object, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        return importlib.util.spec_from_loader(fullname, self) if fullname == HELD else None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        self.threads.append(threading.current_thread().name)
        self.arrived.set()
        self.release.wait(FAILURE_BOUND_S)


@pytest.fixture
def held() -> Iterator[HeldImport]:
    finder = HeldImport()
    sys.meta_path.insert(0, finder)
    try:
        yield finder
    finally:
        finder.release.set()
        sys.meta_path.remove(finder)
        sys.modules.pop(HELD, None)


def registry_with(**factories: LazyFactory) -> ProviderRegistry:
    return ProviderRegistry(
        timeout=1, version_key=b"k", factories=factories, load_entry_points=False
    )


async def test_a_slow_provider_import_holds_up_no_loaded_provider(held: HeldImport) -> None:
    registry = registry_with(
        slow=LazyFactory(HELD, lambda _: FakeProvider("slow")),
        fast=LazyFactory("tests.support.fake_provider", lambda _: FakeProvider("fast")),
    )
    slow = [asyncio.create_task(registry.load("slow")) for _ in range(3)]
    assert await asyncio.to_thread(held.arrived.wait, FAILURE_BOUND_S)

    fast = await asyncio.wait_for(registry.load("fast"), FAILURE_BOUND_S)
    assert fast.name == "fast"
    assert not any(task.done() for task in slow)

    held.release.set()
    loaded = await asyncio.gather(*slow)
    assert {provider.name for provider in loaded} == {"slow"}
    assert loaded[0] is loaded[1] is loaded[2]  # built once
    assert len(held.threads) == 1 and held.threads[0] != threading.main_thread().name


async def test_a_failed_import_is_reported_by_the_factory_and_tried_again() -> None:
    def build(_: object) -> FakeProvider:
        import tests_no_such_provider_package  # type: ignore[import-not-found]  # noqa: F401

        raise AssertionError("unreachable")

    registry = registry_with(broken=LazyFactory("tests_no_such_provider_package", build))
    for _ in range(2):
        with pytest.raises(ModuleNotFoundError, match="tests_no_such_provider_package"):
            await registry.load("broken")


def test_built_in_provider_packages_are_imported_off_the_event_loop() -> None:
    setup = """
        import sys
        from agent.providers.registry import ProviderRegistry

        async def main():
            assert not [m for m in sys.modules if m.startswith("agent.providers.aws")]
            registry = ProviderRegistry(timeout=5, version_key=b"k", load_entry_points=False)
            loaded = [type(await registry.load(name)).__module__ for name in
                      ("vault", "openbao", "aws", "azure", "gcp")]
            await registry.close()
            return loaded
    """
    calls, loaded = loop_thread_calls(setup, paths=["agent/providers/"])
    assert loaded == [
        "agent.providers.vault.provider",
        "agent.providers.vault.provider",
        "agent.providers.aws.provider",
        "agent.providers.azure.provider",
        "agent.providers.gcp.provider",
    ]
    assert calls == []
