"""The shared Retry-After parser (Azure and GCP)."""

from __future__ import annotations

from agent.providers.common.http import parse_retry_after


def test_retry_after_forms() -> None:
    assert parse_retry_after("7", 0) == 7.0
    assert parse_retry_after(" 7 ", 0) == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470.0) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412490.0) == 0.0  # past
    for unusable in ("", "soon", "-3", "1.5", "\u0663"):  # "٣" is a digit, not an ASCII one
        assert parse_retry_after(unusable, 0) is None
