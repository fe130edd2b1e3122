"""Embedded parameter text (``objects``, ``secrets``) parsed once per distinct text, and large
texts parsed in a worker thread.

Every publish and every rotation of every pod hands a provider the same SecretProviderClass
text, and decoding it as Go does is slow in Python: 5000 objects (about 300-400 KiB) take
85-250 ms per provider (docs/benchmarks.md), which on the event loop would stall every other
volume. So each provider asks :func:`parsed` instead of calling its parser:

    objects = await parsed(parse_objects, attributes.get("objects", ""))
    objects = await parsed(objects_from, text, translation, regions)  # with a context

- The result is kept under the SHA-256 digest of the text (with the parser and the context,
  which must be hashable), so the text itself is not kept twice and equal texts from any SPC
  share one entry. Parsers must be pure: same text and context, same result.
- A text above ``OFF_LOOP_ABOVE`` characters is parsed in a worker thread (a thread hop costs
  less than parsing 8 KiB); concurrent callers of one text wait for one parse.
- Errors are not kept (a fixed SPC is a new text anyway, and kubelet's retries back off).
- Memory is bounded for all providers together: parsed structures take 4.5-6.5 times their
  text (measured), so at most ``MAX_KEPT_CHARS`` of text is kept (about 13 MiB parsed), in at
  most ``MAX_ENTRIES`` entries, least recently used dropped first; a text above
  ``MAX_ENTRY_CHARS`` is parsed every time (off the loop) rather than crowd out the rest.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from agent.aio.threads import run_blocking

T = TypeVar("T")

OFF_LOOP_ABOVE = 8 * 1024
MAX_ENTRIES = 512
MAX_KEPT_CHARS = 2 * 1024 * 1024
MAX_ENTRY_CHARS = 512 * 1024

_Key = tuple[Callable[..., Any], str, tuple[Hashable, ...]]


@dataclass(frozen=True, slots=True)
class _Entry:
    value: Any
    chars: int


class ParseCache:
    """Parsed texts by (parser, SHA-256 of the text, context); see the module docstring."""

    def __init__(
        self,
        *,
        max_entries: int = MAX_ENTRIES,
        max_kept_chars: int = MAX_KEPT_CHARS,
        max_entry_chars: int = MAX_ENTRY_CHARS,
        off_loop_above: int = OFF_LOOP_ABOVE,
    ) -> None:
        self._max_entries = max_entries
        self._max_kept_chars = max_kept_chars
        self._max_entry_chars = min(max_entry_chars, max_kept_chars)
        self._off_loop_above = off_loop_above
        self._entries: OrderedDict[_Key, _Entry] = OrderedDict()
        self._kept_chars = 0
        self._parsing: dict[_Key, asyncio.Future[Any]] = {}
        self.parses = 0  # parser calls (tests and benchmarks read these two)
        self.parses_off_loop = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def parse(self, parse: Callable[..., T], text: str, *context: Hashable) -> T:
        """``parse(text, *context)``, from the cache when this text was parsed before."""
        key: _Key = (parse, hashlib.sha256(text.encode()).hexdigest(), context)
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            return cast(T, entry.value)
        if len(text) <= self._off_loop_above:
            self.parses += 1
            value = parse(text, *context)
            self._keep(key, value, len(text))
            return value
        running = self._parsing.get(key)
        if running is None:
            running = asyncio.ensure_future(self._parse_off_loop(key, parse, text, context))
            running.add_done_callback(_retrieve)
            self._parsing[key] = running
        # A cancelled caller leaves the parse running for the others (and for the cache).
        return cast(T, await asyncio.shield(running))

    async def _parse_off_loop(
        self, key: _Key, parse: Callable[..., Any], text: str, context: tuple[Hashable, ...]
    ) -> Any:
        try:
            self.parses += 1
            self.parses_off_loop += 1
            value = await run_blocking(parse, text, *context)
            self._keep(key, value, len(text))
            return value
        finally:
            del self._parsing[key]

    def _keep(self, key: _Key, value: Any, chars: int) -> None:
        if chars > self._max_entry_chars:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self._kept_chars -= old.chars
        self._entries[key] = _Entry(value, chars)
        self._kept_chars += chars
        while len(self._entries) > self._max_entries or self._kept_chars > self._max_kept_chars:
            _, dropped = self._entries.popitem(last=False)
            self._kept_chars -= dropped.chars

    def clear(self) -> None:
        self._entries.clear()
        self._kept_chars = 0


def _retrieve(future: asyncio.Future[Any]) -> None:
    # Every waiter may have been cancelled: the outcome is then dropped here, not logged by
    # asyncio as "exception never retrieved".
    if not future.cancelled():
        future.exception()


SHARED = ParseCache()
"""The one cache of the process: all providers draw on one memory budget."""


async def parsed(parse: Callable[..., T], text: str, *context: Hashable) -> T:
    """``parse(text, *context)`` through :data:`SHARED` (see the module docstring)."""
    return await SHARED.parse(parse, text, *context)
