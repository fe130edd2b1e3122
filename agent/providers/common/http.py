"""HTTP header rules every provider's aiohttp client needs, without importing aiohttp.

Usage::

    delay = parse_retry_after(headers.get("retry-after", ""), time.time())  # seconds or None

(Reading a body whole under a cap is ``bodies.read_capped``.)
"""

from __future__ import annotations

import email.utils


def parse_retry_after(value: str, now: float) -> float | None:
    """A ``Retry-After`` value (RFC 9110 §10.2.3: delay-seconds or an HTTP-date) as seconds
    from ``now`` (Unix seconds), never negative; None when absent or unreadable."""
    value = value.strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)
