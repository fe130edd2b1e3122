"""Counts in-flight calls so shutdown can drain them within a bound."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from agent.errors import ShuttingDown


class InFlight:
    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._draining = False

    @property
    def count(self) -> int:
        return self._count

    @property
    def draining(self) -> bool:
        return self._draining

    @contextmanager
    def track(self) -> Iterator[None]:
        if self._draining:
            raise ShuttingDown("the agent is shutting down; retry on the next instance")
        self._count += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._count -= 1
            if self._count == 0:
                self._idle.set()

    async def drain(self, timeout: float) -> bool:
        """Refuse new calls, wait for running ones; True when all finished in time."""
        self._draining = True
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True
