"""One deadline for every request of a mount, carried by a context variable.

A provider sets it around a mount; its HTTP clients ask it how long the next attempt may take
and whether a pause before a retry still fits, so retries (and a server's ``Retry-After``)
never run past it, and the failure reported is the last answer, not a bare timeout::

    with deadline(28.5):                      # provider.mount
        ...
        timeout = attempt_timeout(30.0, "Secret Manager")  # transport, per attempt
        if not fits(delay):                   # before sleeping for a retry
            raise last_failure

It reaches tasks started inside (contextvars are copied into them) and worker threads started
through ``run_blocking``. :func:`portion` narrows it for one part of the work, e.g. the primary
region when a failover region must still get its turn.

Why not ``asyncio.timeout`` around the requests: on Python 3.11, when it expires together with
aiohttp's own request timer, aiohttp reports the cancellation as its own timeout and the outer
deadline is lost (retries then run past it); and a cancellation cannot say what was last heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass

from agent.errors import ProviderUnavailable


@dataclass(frozen=True, slots=True)
class Deadline:
    at: float  # event loop time
    budget: float  # seconds it was given, for messages


_current: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar(
    "provider_request_deadline", default=None
)


class DeadlinePassed(ProviderUnavailable):
    """The deadline passed before the next attempt could start."""


def _now() -> float:
    return asyncio.get_running_loop().time()


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[Deadline]:
    """Requests made inside (and in tasks started inside) end within ``seconds`` from now;
    an enclosing deadline that ends sooner still wins."""
    current = _current.get()
    at = _now() + seconds
    if current is not None and current.at < at:
        at, seconds = current.at, current.budget
    token = _current.set(Deadline(at, seconds))
    try:
        yield Deadline(at, seconds)
    finally:
        _current.reset(token)


@contextlib.contextmanager
def portion(fraction: float) -> Iterator[None]:
    """Inside, the deadline is ``fraction`` of the time left (nothing changes without one)."""
    current = _current.get()
    if current is None:
        yield
        return
    left = max(0.0, current.at - _now())
    with deadline(left * fraction):
        yield


def time_left() -> float | None:
    """Seconds until the deadline (0 once passed); None when no deadline is set."""
    current = _current.get()
    return None if current is None else max(0.0, current.at - _now())


def budget() -> float | None:
    """The seconds the current deadline was given (for messages); None without one."""
    current = _current.get()
    return None if current is None else current.budget


def attempt_timeout(default: float, service: str) -> float:
    """Seconds the next attempt may take: ``default``, or what is left when that is less.

    Raises DeadlinePassed ("<service> did not answer within <budget>s") once it passed.
    """
    current = _current.get()
    if current is None:
        return default
    left = current.at - _now()
    if left <= 0:
        raise DeadlinePassed(f"{service} did not answer within {current.budget:g}s")
    return min(default, left)


def fits(delay: float) -> bool:
    """Whether a pause of ``delay`` seconds still leaves time for an attempt after it."""
    left = time_left()
    return left is None or delay < left
