"""Redaction: no token, password or secret value reaches a log line or an error message.

The agent's log set-up (agent/logs.py) puts :func:`redact` right before rendering every line,
ours and stdlib loggers' alike, so nothing secret reaches ``kubectl logs`` even when a caller
logs a whole mapping or an exception whose message quotes a credential: values under
sensitive-sounding keys are replaced, secret-shaped strings (JWTs, Vault/OpenBao and Google
tokens) and registered values are scrubbed from all text. The CSI layer registers each
request's node-publish secret values and the pod's service-account tokens (whole, and their
payload and signature apart) with :func:`scrubbing` for the duration of the call, so those are
scrubbed wherever they show up, including the error message kubelet turns into a pod event
(:func:`scrub_text`).
"""

from __future__ import annotations

import contextlib
import functools
import re
import threading
from collections.abc import Iterable, Iterator

from structlog.typing import EventDict, WrappedLogger

REDACTED = "[REDACTED]"

_SENSITIVE_KEY = re.compile(
    "token|secret|password|passwd|credential|contents|jwt|authorization|private_key|apikey"
)
# Well-known names that merely *mention* a secret; redacting them would hide useful context.
# The agent's own settings that name or time Secrets (the effective configuration at start).
_SAFE_KEYS = frozenset(
    {
        "secretproviderclass",
        "secretname",
        "secrettype",
        "secretnamespace",
        "hmacsecretname",
        "secretresyncinterval",
    }
)
_SECRET_SHAPED = re.compile(
    r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"  # JWT (service-account tokens)
    r"|\bhv[sbr]\.[A-Za-z0-9_-]{20,}"  # Vault/OpenBao service, batch, recovery tokens
    r"|\bs\.[A-Za-z0-9]{20,}"  # legacy Vault service tokens
    r"|\bya29\.[A-Za-z0-9_-]{20,}"  # Google OAuth 2.0 access tokens
)
_MAX_DEPTH = 8


class _SensitiveValues:
    """A bounded, reference-counted set of exact strings to scrub from every log line."""

    MIN_LENGTH = 6  # shorter values are common words; scrubbing them would mangle logs
    CAPACITY = 10_000
    _PREFIX = MIN_LENGTH
    _LINEAR_SCAN_LIMIT = 32  # below this, ``in`` checks (C speed) beat the prefix index

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}  # insertion order doubles as eviction order
        self._snapshot: tuple[tuple[str, ...], dict[str, tuple[str, ...]]] = ((), {})
        self._dirty = False

    def add(self, value: str) -> None:
        if len(value) < self.MIN_LENGTH:
            return
        with self._lock:
            self._counts[value] = self._counts.get(value, 0) + 1
            while len(self._counts) > self.CAPACITY:
                # Oldest first: a value forgotten by a missed unpublish is the likely stale one.
                del self._counts[next(iter(self._counts))]
            self._dirty = True

    def discard(self, value: str) -> None:
        with self._lock:
            count = self._counts.get(value)
            if count is None:
                return
            if count > 1:
                self._counts[value] = count - 1
            else:
                del self._counts[value]
            self._dirty = True

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()
            self._dirty = True

    def _current(self) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
        # Rebuilt lazily so a burst of registrations costs one rebuild, not one per value.
        if self._dirty:
            with self._lock:
                values = tuple(sorted(self._counts, key=len, reverse=True))
                index: dict[str, list[str]] = {}
                for value in values:
                    index.setdefault(value[: self._PREFIX], []).append(value)
                self._snapshot = (values, {k: tuple(v) for k, v in index.items()})
                self._dirty = False
        return self._snapshot

    def scrub(self, text: str) -> str:
        values, index = self._current()
        if not values or len(text) < self.MIN_LENGTH:
            return text
        if len(values) <= self._LINEAR_SCAN_LIMIT:
            for value in values:  # longest first, so a value containing another wins
                if value in text:
                    text = text.replace(value, REDACTED)
            return text
        return self._scrub_indexed(text, index)

    def _scrub_indexed(self, text: str, index: dict[str, tuple[str, ...]]) -> str:
        # One dict lookup per position: cost grows with the text, not with the registry size.
        out: list[str] = []
        start = i = 0
        limit = len(text) - self.MIN_LENGTH + 1
        while i < limit:
            candidates = index.get(text[i : i + self._PREFIX])
            hit = (
                next((v for v in candidates if text.startswith(v, i)), None) if candidates else None
            )
            if hit is None:
                i += 1
                continue
            out.append(text[start:i])
            out.append(REDACTED)
            i = start = i + len(hit)
        if not out:
            return text
        out.append(text[start:])
        return "".join(out)


_sensitive = _SensitiveValues()


def register_sensitive(value: str) -> None:
    """Scrub ``value`` from every later log line until :func:`forget_sensitive` is called."""
    _sensitive.add(value)


def forget_sensitive(value: str) -> None:
    """Undo one :func:`register_sensitive` (values are reference-counted)."""
    _sensitive.discard(value)


def clear_sensitive() -> None:
    _sensitive.clear()


@functools.lru_cache(maxsize=4096)
def _is_sensitive_key(key: str) -> bool:
    lowered = key.lower()
    if lowered.replace("_", "").replace("-", "") in _SAFE_KEYS:
        return False
    return _SENSITIVE_KEY.search(lowered) is not None


def scrub_text(text: str) -> str:
    """Secret-shaped strings and registered values replaced; for error messages, too."""
    return _sensitive.scrub(_SECRET_SHAPED.sub(REDACTED, text))


def token_parts(token: str) -> list[str]:
    """A JWT whole and its payload and signature apart, for :func:`scrubbing`: the JWT-shape
    pattern needs all three segments, and a token quoted back cut short loses its header or
    its end (the header alone is shared by every token, and a token whose signature is cut off
    is no longer usable)."""
    return [token, *token.split(".")[1:]] if token else []


@contextlib.contextmanager
def scrubbing(values: Iterable[str]) -> Iterator[None]:
    """Register ``values`` for the duration of one request (e.g. its node-publish secrets)."""
    held = [value for value in values if value]
    for value in held:
        register_sensitive(value)
    try:
        yield
    finally:
        for value in held:
            forget_sensitive(value)


def _clean(value: object, depth: int = 0) -> object:
    """Return ``value`` with secret-shaped text scrubbed, recursing into containers."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return scrub_text(value)
    if depth >= _MAX_DEPTH:
        return "<...>"
    if isinstance(value, dict):
        return {k: _clean_item(k, v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v, depth + 1) for v in value]
    return scrub_text(_describe(value))


def _describe(value: object) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        # Raw bytes are file contents more often than not: never render them.
        return f"<{len(value)} bytes>"
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    # Unknown objects are rendered here (not by the renderer's repr fallback) so they get scrubbed.
    return str(value)


def _clean_item(key: object, value: object, depth: int) -> object:
    if isinstance(key, str) and _is_sensitive_key(key) and not _is_harmless(value):
        return REDACTED
    return _clean(value, depth)


def _is_harmless(value: object) -> bool:
    # Counts and flags under a sensitive-sounding key (``secrets_count=3``) carry no secret.
    return value is None or isinstance(value, bool | int)


def redact(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: place after ``format_exc_info`` and right before the renderer."""
    for key, value in event_dict.items():
        event_dict[key] = _clean_item(key, value, 0)
    return event_dict


__all__ = [
    "REDACTED",
    "clear_sensitive",
    "forget_sensitive",
    "redact",
    "register_sensitive",
    "scrub_text",
    "scrubbing",
    "token_parts",
]
