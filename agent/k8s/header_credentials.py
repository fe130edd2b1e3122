"""Credentials that travel in the ``Authorization`` header, checked where they are loaded.

An HTTP header cannot carry a control character other than tab (U+0000 to U+0008, U+000A to
U+001F, U+007F: RFC 9110 section 5.5); aiohttp refuses one with a ValueError on every request
it tries, as Go's net/http refuses it for client-go. So a credential holding one (most often a
final line break) is refused once, where it is loaded, by an error naming where it came from.
A string aiohttp cannot encode as UTF-8 (an unpaired surrogate, which JSON's ``\\ud800`` or
YAML's ``"\\uD800"`` can produce) is refused too: aiohttp's C writer would silently drop it and
send another token. Characters beyond ASCII are sent as UTF-8 by both, so they are accepted.
Nothing is trimmed, as client-go trims nothing, except a token file (``read_token_file``),
which client-go's file token source trims. No message quotes any part of the credential.
"""

from __future__ import annotations

import re
from pathlib import Path

from agent.k8s.lean_import import ConfigException

_FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
CANNOT_CARRY = "which an HTTP header cannot carry"


def header_problem(value: str) -> str | None:
    """Why an HTTP header cannot carry ``value``, in words that quote none of it; None if it can."""
    if _FORBIDDEN.search(value):
        if _FORBIDDEN.search(value.rstrip("\r\n")) is None:
            return f"ends with a line break, {CANNOT_CARRY}"
        return f"holds a control character, {CANNOT_CARRY}"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f"holds an unpaired surrogate (not Unicode text), {CANNOT_CARRY}"
    return None


class RefusedCredential(ConfigException):
    """``source`` (where the credential came from) and ``problem`` (what is wrong with it)."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"{source} {problem}")
        self.problem = problem


def require_header_safe(value: str, source: str) -> str:
    """``value``, or RefusedCredential naming ``source`` (the field it was read from)."""
    problem = header_problem(value)
    if problem is not None:
        raise RefusedCredential(source, problem)
    return value


def read_token_file(path: Path, source: str) -> str:
    """The token in ``path`` as client-go's file token source reads it (spaces and line breaks
    around it trimmed). RefusedCredential naming ``source`` when nothing else is left, the file
    is not UTF-8 text or a header cannot carry it; OSError when the file cannot be read."""
    try:
        token = path.read_bytes().decode().strip()
    except UnicodeDecodeError:  # its text would quote a byte of the token
        raise RefusedCredential(source, "is not UTF-8 text") from None
    if not token:
        raise RefusedCredential(source, "holds only spaces")
    return require_header_safe(token, source)
