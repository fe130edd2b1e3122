"""What every group of ``serve`` flags shares: Settings' defaults, argparse value types that
report a bad value after the flag's name, and Go-style booleans (``--flag``, ``--flag=false``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

from agent.config import Settings, parse_bool, parse_duration, parse_size

T = TypeVar("T")

DEFAULTS = Settings()


def typed(convert: Callable[[str], T]) -> Callable[[str], T]:
    """argparse shows ArgumentTypeError text verbatim after the flag's name."""

    def wrapper(text: str) -> T:
        try:
            return convert(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return wrapper


duration, size, boolean = typed(parse_duration), typed(parse_size), typed(parse_bool)


def go_bool(flag: str, parser: argparse.ArgumentParser, help: str | None = None) -> None:
    """A boolean flag as Go's flag package takes it: bare means true, or ``=true|false``."""
    parser.add_argument(
        flag, nargs="?", const=True, default=None, type=boolean, metavar="BOOL", help=help
    )
