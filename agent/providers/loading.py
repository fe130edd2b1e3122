"""A provider package imported off the event loop, once, however many volumes wait for it.

A built-in provider's package takes 16-70 ms to import on a 2-vCPU node (botocore's data files
take more, in the AWS transport). On the loop, a cold agent whose pods use several stores would
stall once per provider, and every other volume's calls with it; so the import runs in the
agent's library-loading thread (``agent.aio.threads.run_loading``) and callers await it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

from agent.aio.threads import run_loading

if TYPE_CHECKING:
    from agent.ports import Provider
    from agent.providers.factories import ProviderContext, ProviderFactory


@dataclass(frozen=True, slots=True)
class LazyFactory:
    """A provider factory whose provider lives in ``module``, a package imported only on first
    use; ``ProviderRegistry.load`` has it imported off the event loop before calling ``build``."""

    module: str
    build: ProviderFactory

    def __call__(self, context: ProviderContext) -> Provider:
        return self.build(context)


class PackageImports:
    """The imports in progress, by module name."""

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Task[ModuleType]] = {}

    async def ensure(self, module: str) -> None:
        """Returns once ``module`` is imported, or its import failed: the caller's own import
        statement (a sys.modules hit, or the same error again) then reports the failure."""
        if module in sys.modules:
            return
        pending = self._running.get(module)
        if pending is None:
            pending = asyncio.create_task(run_loading(importlib.import_module, module))
            self._running[module] = pending
            pending.add_done_callback(self._done)
        with contextlib.suppress(Exception):
            await asyncio.shield(pending)  # one caller cancelled does not cancel the import

    def _done(self, task: asyncio.Task[ModuleType]) -> None:
        for module, pending in list(self._running.items()):
            if pending is task:
                del self._running[module]
        if not task.cancelled():
            task.exception()  # retrieved here: the waiters report a failure themselves
