"""What a single file or directory name must be on a Windows node (pure string rules).

Windows accepts spellings that name a *different* file than they seem to, so a name that passes
POSIX rules can still escape, alias or hide something on NTFS:

- ``name:stream`` writes an alternate data stream of ``name`` (the payload would hide in, or
  overwrite a stream of, another file);
- a trailing dot or space is dropped by the Win32 layer (``key.`` is ``key``);
- ``CON``, ``NUL``, ``COM1``, ... (also with an extension, ``nul.txt``) are devices, not files;
- ``ABCDEF~1.TXT`` may be the 8.3 short name of another file in the same directory;
- ``<>"|?*``, ``/``, ``\\`` and control characters are not allowed at all.

Sources: Microsoft's "Naming Files, Paths, and Namespaces" and "File Streams (Local File
System)". NTFS compares names case-insensitively, so two names that differ only in case are one
file: :func:`name_key` gives the key to compare by.
"""

from __future__ import annotations

import re

_DEVICE_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{port}{n}" for port in ("COM", "LPT") for n in (*"123456789", "¹", "²", "³")}
)
_FORBIDDEN = frozenset('<>"|?*/\\') | frozenset(chr(c) for c in range(32))
_SHORT_NAME = re.compile(r"~\d")
MAX_NAME_CHARS = 255  # NTFS: UTF-16 code units in one component


def name_problem(name: str) -> str | None:
    """Why ``name`` is not a safe single name on Windows, or None when it is."""
    if name in ("", ".", ".."):
        return f"{name!r} is not a file name"
    bad = next((char for char in name if char in _FORBIDDEN), None)
    checks = (
        (":" in name, "contains ':' (an NTFS alternate data stream or a drive)"),
        (bad is not None, f"contains {bad!r}, which Windows does not allow in a name"),
        (
            name[-1] in ". ",
            "ends with a dot or a space, which Windows drops (it would name another file)",
        ),
        (
            name.split(".", 1)[0].rstrip(" ").upper() in _DEVICE_NAMES,
            "is a reserved device name on Windows (CON, NUL, COM1, ...)",
        ),
        (
            _SHORT_NAME.search(name) is not None,
            "looks like an 8.3 short name ('~' and a digit), which may alias another file",
        ),
        (
            len(name.encode("utf-16-le", "surrogatepass")) // 2 > MAX_NAME_CHARS,
            f"is longer than {MAX_NAME_CHARS} characters",
        ),
    )
    return next((why for failed, why in checks if failed), None)


def name_key(name: str) -> str:
    """The key under which NTFS treats names as equal (case-insensitive)."""
    return name.casefold()
