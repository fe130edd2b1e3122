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
# Win32 MAX_PATH (260) less the terminating NUL, in UTF-16 code units; a directory must leave
# room for an 8.3 name (MAX_PATH - 12), so CreateDirectory takes at most 247.
MAX_PATH_CHARS = 259
MAX_DIRECTORY_CHARS = 247
NAMING_DOC = 'Microsoft, "Naming Files, Paths, and Namespaces"'
STREAMS_DOC = 'Microsoft, "File Streams (Local File System)"'


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
    why = next((why for failed, why in checks if failed), None)
    if why is None:
        return None
    source = STREAMS_DOC if why.startswith("contains ':'") else NAMING_DOC
    return f"{why} ({source})"


def name_key(name: str) -> str:
    """A key equal for every two names NTFS may treat as one file.

    NTFS compares names through the volume's upcase table, one upper-case letter for each
    letter (DOTLESS I, U+0131, upper-cases to ``I``, which ``casefold`` keeps apart). The key
    upper-cases each character that has a one-letter upper case, then case-folds: it equates
    a few names NTFS keeps apart (``'ß'`` and ``'ss'``), which only refuses a payload, never
    merges two of its files into one.
    """
    return "".join(_upper_one(char) for char in name).casefold()


def _upper_one(char: str) -> str:
    upper = char.upper()
    return upper if len(upper) == 1 else char


def utf16_length(text: str) -> int:
    """Length in UTF-16 code units, as Windows counts path lengths."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def path_length_problem(directory: str, path: str, longest_temporary: int) -> str | None:
    r"""Why ``directory\path`` (``path`` "/"-separated) is too long for Win32 calls on a node
    without long paths, or None. Counts the file, each directory on the way, and the
    temporary file of ``longest_temporary`` characters written beside the file first."""
    parts = path.split("/")
    length = utf16_length(directory)
    for name in parts[:-1]:
        length += 1 + utf16_length(name)
        if length > MAX_DIRECTORY_CHARS:
            return (
                f"makes a directory path of {length} characters; Windows allows "
                f"{MAX_DIRECTORY_CHARS} (MAX_PATH less room for an 8.3 name; {NAMING_DOC})"
            )
    longest = length + 1 + max(utf16_length(parts[-1]), longest_temporary)
    if longest > MAX_PATH_CHARS:
        return (
            f"makes a file path of {longest} characters; Windows allows {MAX_PATH_CHARS} "
            f"(MAX_PATH) unless long paths are enabled on the node ({NAMING_DOC})"
        )
    return None
