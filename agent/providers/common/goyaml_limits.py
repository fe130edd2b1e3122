"""What one YAML text may cost :mod:`goyaml`: its size in YAML events before it is composed,
and the work of converting it (aliases and ``<<`` merges included) after.

PyYAML composes a whole document into a graph of nodes of about 300 bytes each: a 2.8 MB
flow list of 1.4 million numbers took 400 MiB and 2.9 s before any other limit could look
at it (docs/benchmarks.md). So a text longer than :data:`COUNT_ABOVE` is first counted in
libyaml's events, without composing anything (``CParser.raw_parse``: C speed, constant
memory, about 3% of the time a parse takes), and refused above :data:`MAX_EVENTS`. Aliases
add no nodes, but every use of one converts its node again: a :class:`Budget` pays for
converting the values of one text, all its documents and items together, so that neither
aliases nor ``<<`` merges make a short text cost more than the longest the cap lets through.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml

from agent.providers.common.goyaml_values import GoYAMLError, fail

MAX_VALUES = 100_000
"""Values one document may convert to (``Value.json()``/``any()``), aliases expanded."""

MAX_EVENTS = 3 * MAX_VALUES + 4
"""libyaml events one text may hold, all documents together: a document of MAX_VALUES
values has at most three events a value (its key, and the start and end of a mapping or
list; a scalar or an alias is one), and the stream and the document start and end."""

COUNT_ABOVE = 64 * 1024
"""Texts of at most this many characters are not counted (nor slowed down): libyaml makes
fewer than two events of a character (the densest text found, ``[[?]:,[?]:,...]``, nine
every five), so they stay far below MAX_EVENTS."""


def check_events(text: str, where: str, loader: Callable[..., Any], *, first: bool) -> None:
    """Raise GoYAMLError when ``text`` holds more than MAX_EVENTS events: in its first
    document only when ``first`` (``yaml.Unmarshal`` reads no further), else in all. A syntax
    error met on the way raises the YAMLError the composer would (same place)."""
    if len(text) <= COUNT_ABOVE:
        return
    counted = _count_in_c(loader(text))
    if counted is not None and counted <= MAX_EVENTS:
        return
    if counted is None or first:
        # A syntax error (which comes first, it or the cap?), or a cap that later documents
        # may have filled: count event by event up to the cap, as the composer would meet them.
        _count_in_python(loader(text), where, first)
        return
    raise _too_many_events(where)


def _too_many_events(where: str) -> GoYAMLError:
    return fail(
        where,
        f"more than {MAX_EVENTS} YAML events (scalars, aliases, starts and ends of mappings "
        f"and lists; a document may hold {MAX_VALUES} values); not read",
    )


def _count_in_c(parser: Any) -> int | None:
    """All the text's events, counted in libyaml; None on a syntax error or without libyaml."""
    raw_parse = getattr(parser, "raw_parse", None)
    try:
        return int(raw_parse()) if raw_parse is not None else None
    except yaml.YAMLError:
        return None
    finally:
        parser.dispose()


def _count_in_python(parser: Any, where: str, first: bool) -> None:
    counted = 0
    try:
        while parser.check_event():
            event = parser.get_event()
            counted += 1
            if counted > MAX_EVENTS:
                raise _too_many_events(where)
            if first and isinstance(event, yaml.DocumentEndEvent):
                return
    finally:
        parser.dispose()


class Budget:
    """What converting the values of one text may still cost, shared by all its Values: one
    for each value ``json()``/``any()`` converts, each item of ``sequence()``, each field of
    ``struct()`` or a map, and each merge source and key a ``<<`` merge brings. MAX_EVENTS
    in all: a text without aliases spends about one for each of its events, once."""

    __slots__ = ("left",)

    def __init__(self, left: int = MAX_EVENTS) -> None:
        self.left = left

    def spend(self, count: int, where: str) -> None:
        self.left -= count
        if self.left < 0:
            raise exhausted(where)


def exhausted(where: str) -> GoYAMLError:
    return fail(
        where,
        f"the text's aliases and << merges expand to more than {MAX_EVENTS} values; not read",
    )
