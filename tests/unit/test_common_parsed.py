"""common.parsed: one parse per distinct text and context, large texts in a worker thread,
concurrent callers sharing one parse, errors never kept, memory bounded."""

from __future__ import annotations

import asyncio
import threading

import pytest

from agent.errors import InvalidSecretProviderClass
from agent.providers.common.parsed import ParseCache

SMALL, LARGE = "a" * 10, "b" * 100


class Parser:
    """A pure parser that records how often, and on which thread, it ran."""

    def __init__(self, release: threading.Event | None = None) -> None:
        self.calls: list[tuple[str, tuple[object, ...], bool]] = []
        self._release = release

    def __call__(self, text: str, *context: object) -> tuple[int, tuple[object, ...]]:
        on_main = threading.current_thread() is threading.main_thread()
        self.calls.append((text[:1], context, on_main))
        if self._release is not None:
            assert self._release.wait(5)
        if text.startswith("!"):
            raise InvalidSecretProviderClass("objects: not YAML")
        return len(text), context


def cache(**kwargs: int) -> ParseCache:
    kwargs.setdefault("off_loop_above", 50)
    return ParseCache(**kwargs)


async def test_each_text_and_context_is_parsed_once() -> None:
    parses, parser = cache(), Parser()
    assert await parses.parse(parser, SMALL) == (10, ())
    assert await parses.parse(parser, SMALL) == (10, ())
    assert await parses.parse(parser, SMALL, "_", ("us-east-1",)) == (10, ("_", ("us-east-1",)))
    assert await parses.parse(parser, LARGE) == (100, ())
    assert await parses.parse(parser, LARGE) == (100, ())
    # Small texts on the loop's thread, large ones in a worker thread.
    assert parser.calls == [("a", (), True), ("a", ("_", ("us-east-1",)), True), ("b", (), False)]
    assert (parses.parses, parses.parses_off_loop, len(parses)) == (3, 1, 3)


async def test_two_parsers_of_one_text_do_not_share_results() -> None:
    parses, first, second = cache(), Parser(), Parser()
    await parses.parse(first, SMALL)
    await parses.parse(second, SMALL)
    assert len(first.calls) == len(second.calls) == 1


async def test_concurrent_callers_of_a_large_text_share_one_parse() -> None:
    release = threading.Event()
    parses, parser = cache(), Parser(release)
    callers = [asyncio.create_task(parses.parse(parser, LARGE)) for _ in range(5)]
    await asyncio.sleep(0.01)
    callers[0].cancel()  # a cancelled caller leaves the parse to the others
    release.set()
    results = await asyncio.gather(*callers[1:])
    assert results == [(100, ())] * 4
    assert len(parser.calls) == 1
    assert await parses.parse(parser, LARGE) == (100, ())  # and to the cache
    assert len(parser.calls) == 1


@pytest.mark.parametrize("text", ["!" + SMALL, "!" + LARGE])
async def test_errors_are_not_kept(text: str) -> None:
    parses, parser = cache(), Parser()
    for _ in range(2):
        with pytest.raises(InvalidSecretProviderClass, match="objects: not YAML"):
            await parses.parse(parser, text)
    assert (len(parser.calls), len(parses)) == (2, 0)


async def test_memory_is_bounded_by_kept_text_and_entries() -> None:
    parses, parser = cache(max_kept_chars=250, max_entry_chars=120, max_entries=3), Parser()
    for letter in "cde":
        await parses.parse(parser, letter * 100)  # 300 chars: the oldest is dropped
    assert len(parses) == 2
    await parses.parse(parser, "e" * 100)
    await parses.parse(parser, "c" * 100)
    assert [call[0] for call in parser.calls] == ["c", "d", "e", "c"]
    await parses.parse(parser, "f" * 121)  # above max_entry_chars: parsed, never kept
    await parses.parse(parser, "f" * 121)
    assert len(parses) == 2
    for letter in "ghij":
        await parses.parse(parser, letter)
    assert len(parses) == 3  # max_entries
