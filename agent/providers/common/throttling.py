"""A store asking the agent to slow down: the ``Retry-After`` family of headers.

Every HTTP provider reads the same hint (RFC 9110 ``Retry-After`` in seconds or as an HTTP
date; Azure's ``retry-after-ms`` and ``x-ms-retry-after-ms``) and raises
``agent.errors.ProviderThrottled`` with it, so the rotation scheduler backs off the provider
for at least that long.
"""

from __future__ import annotations

import email.utils
from collections.abc import Mapping


def retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds the server asked to wait, or None. ``headers`` are looked up by lower-case
    names (a case-insensitive mapping, or one whose names were lowered); ``now`` is the wall
    clock (epoch seconds), for an HTTP-date."""
    for name, scale in (("retry-after-ms", 1000.0), ("x-ms-retry-after-ms", 1000.0)):
        if headers.get(name, "").strip().isdigit():
            return int(headers[name]) / scale
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)
