"""structlog set-up: one line format for our events and for stdlib loggers, always redacted.

Every line goes through :func:`agent.log_redaction.redact` right before rendering (see there
for what is scrubbed and how the CSI layer registers a request's secrets). ``-v`` sets the
agent's own level; third-party stdlib loggers stay at INFO unless ``--debug-loggers`` names them.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import TextIO

import structlog
from structlog.typing import Processor

from agent.log_console import console_renderer, drop_none
from agent.log_redaction import redact

# Environment fallback for --debug-loggers (e.g. set on the DaemonSet without changing args).
DEBUG_LOGGERS_ENV = "SECRETS_STORE_AGENT_DEBUG_LOGGERS"
_debug_loggers_set: set[str] = set()  # what the last configure_logging turned on, to undo


def _renderers(json: bool, stream: TextIO) -> list[Processor]:
    if json:
        return [structlog.processors.JSONRenderer()]
    colors = bool(getattr(stream, "isatty", lambda: False)())
    return [drop_none, console_renderer(colors=colors)]


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
    ]


def configure_logging(
    json: bool, verbosity: int, stream: TextIO | None = None, debug_loggers: Iterable[str] = ()
) -> None:
    """Configure structlog and the stdlib root logger; safe to call again (tests do).

    ``verbosity`` (``-v``) controls the agent's own events: DEBUG from 1 (the CSI request
    trace included). Third-party libraries log through stdlib logging at INFO and above only,
    whatever ``-v`` is: the HTTP/2 stack's DEBUG output (hpack, h2, grpclib) is raw header
    blocks, about 24 lines per request. ``debug_loggers`` (``--debug-loggers``) names the
    stdlib loggers to open at DEBUG anyway (``hpack``, ``grpclib.protocol``, ``aiohttp``...).
    """
    out = sys.stdout if stream is None else stream
    level = logging.DEBUG if verbosity >= 1 else logging.INFO
    tail: list[Processor] = [
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        redact,
        *_renderers(json, out),
    ]
    structlog.configure(
        processors=[*_shared_processors(), *tail],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.WriteLoggerFactory(file=out),
        # Not cached: module-level loggers must follow a later reconfiguration.
        cache_logger_on_first_use=False,
    )
    _route_stdlib(out, tail, debug_loggers)


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler we installed, so reconfiguring replaces only ours (not pytest's)."""


def _route_stdlib(out: TextIO, tail: list[Processor], debug_loggers: Iterable[str]) -> None:
    handler = _Handler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*_shared_processors(), structlog.stdlib.add_logger_name],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for name in _debug_loggers_set - set(debug_loggers):
        logging.getLogger(name).setLevel(logging.NOTSET)
    _debug_loggers_set.clear()
    for name in debug_loggers:
        logging.getLogger(name).setLevel(logging.DEBUG)
        _debug_loggers_set.add(name)


def parse_debug_loggers(text: str) -> tuple[str, ...]:
    """``--debug-loggers`` / $SECRETS_STORE_AGENT_DEBUG_LOGGERS: comma-separated logger names."""
    return tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))


__all__ = ["DEBUG_LOGGERS_ENV", "configure_logging", "parse_debug_loggers"]
