"""The text log format (no ``--log-format-json``): values written the way klog writes them.

structlog's console renderer shows Python reprs (``vault_namespace=None``,
``providers=['aws', 'azure']``, ``error='...'``); an operator used to the upstream driver's
klog lines reads Go-like values instead: ``true``/``false``, ``120`` rather than ``120.0``,
lists comma-joined, strings in double quotes only when they hold a space, ``=`` or a quote,
nested mappings as ``{key=value ...}``, and a key whose value is None left out (inside a
mapping it stays, empty, so the start-up configuration line still names every setting).
The JSON format is not touched: this applies only to the console renderer.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping

import structlog
from structlog.dev import Column, KeyValueColumnFormatter
from structlog.typing import EventDict, WrappedLogger

_NEEDS_QUOTES = re.compile(r"[\s=\"'\\{}]")


def klog_value(value: object) -> str:
    """``value`` as one token of a ``key=value`` text line (see the module docstring)."""
    if isinstance(value, Mapping):
        return "{" + " ".join(f"{key}={klog_value(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list | tuple | set | frozenset):
        return _quoted(",".join(_element(item) for item in value))
    if isinstance(value, str):
        return _quoted(value)
    return _scalar(value)


def _scalar(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value).removesuffix(".0")
    return _quoted(str(value))


def _element(item: object) -> str:
    # Unquoted: the joined list is quoted as a whole when any element needs it.
    return item if isinstance(item, str) else klog_value(item)


def _quoted(text: str) -> str:
    # JSON string syntax is Go's %q for everything a log line carries (escapes, unicode).
    return json.dumps(text, ensure_ascii=False) if _NEEDS_QUOTES.search(text) else text


def drop_none(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor (text format only): leave out top-level keys whose value is None."""
    for key in [key for key, value in event_dict.items() if value is None]:
        del event_dict[key]
    return event_dict


def console_renderer(*, colors: bool) -> structlog.dev.ConsoleRenderer:
    """structlog's console renderer with :func:`klog_value` for every ``key=value`` pair."""
    # plain_traceback: format_exc_info already produced text (which redact scrubbed).
    renderer = structlog.dev.ConsoleRenderer(
        colors=colors, exception_formatter=structlog.dev.plain_traceback, timestamp_key="ts"
    )
    default, *named = renderer.columns  # the first is the default key=value column
    if isinstance(default.formatter, KeyValueColumnFormatter):  # keeps its colour styles
        formatter = dataclasses.replace(default.formatter, value_repr=klog_value)
        renderer.columns = [Column("", formatter), *named]
    return renderer


__all__ = ["console_renderer", "drop_none", "klog_value"]
