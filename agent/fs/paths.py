"""Payload validation (upstream ``fileutil.Validate`` plus stricter checks).

Every rejection raises :class:`agent.errors.PayloadError` naming the offending path; file contents
never appear in a message. ``windows=True`` adds a Windows node's name rules
(``agent.platform.winnames``: no ``name:stream``, no trailing dot or space, no device names or
8.3 short names) and compares paths case-insensitively, as NTFS does, so ``Key`` and ``key``
are one file there and a duplicate.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence

from agent.errors import PayloadError
from agent.model import SecretFile
from agent.platform.winnames import name_key, name_problem

MAX_PATH_LENGTH = 4096
MAX_NAME_LENGTH = 255
MAX_MODE = 0o777
DEFAULT_MAX_TOTAL_BYTES = 16 * 1024 * 1024

# The Windows writer's temporary files, swept from every directory it writes to
# (agent.fs.windows.layout); a payload name of this form would be swept with them.
WINDOWS_TMP_PREFIX = "..tmp-"
# "C:" at the start means a drive-relative or absolute path on Windows nodes.
_DRIVE_RE = re.compile(r"^[A-Za-z]:")
_SHOWN_CHARS = 120


def _show(path: str) -> str:
    """Quote a path for a message; very long paths are cut so errors stay readable."""
    if len(path) > _SHOWN_CHARS:
        return repr(path[:_SHOWN_CHARS]) + "..."
    return repr(path)


def _invalid(path: str, why: str) -> PayloadError:
    return PayloadError(f"invalid file path {_show(path)}: {why}")


def _byte_length(path: str, text: str) -> int:
    # Kernel limits count bytes, not characters, so measure the UTF-8 encoding.
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise _invalid(path, "not valid UTF-8") from None


def validate_path(path: str, *, windows: bool = False) -> None:
    """Raise PayloadError unless ``path`` is a clean relative path the writer may project."""
    if not path:
        raise _invalid(path, "must not be empty")
    if "\x00" in path:
        raise _invalid(path, "must not contain NUL")
    if _byte_length(path, path) > MAX_PATH_LENGTH:
        raise _invalid(path, f"must be at most {MAX_PATH_LENGTH} bytes long (kernel PATH_MAX)")
    # Backslashes are separators on Windows nodes; forbidding them everywhere keeps one rule
    # for both platforms and closes "a\\..\\..\\x" style escapes.
    if "\\" in path:
        raise _invalid(path, "must not contain a backslash")
    if posixpath.isabs(path) or _DRIVE_RE.match(path):
        raise _invalid(path, "must be a relative path")
    elements = path.split("/")
    for element in elements:
        if element == "..":
            raise _invalid(path, "must not contain '..'")
        if _byte_length(path, element) > MAX_NAME_LENGTH:
            raise _invalid(
                path, f"file names must be at most {MAX_NAME_LENGTH} bytes long (kernel NAME_MAX)"
            )
        problem = _windows_problem(element) if windows else None
        if problem is not None:
            raise _invalid(path, f"the name {element!r} {problem}")
    if elements[0].startswith(".."):
        raise _invalid(path, "must not start with '..' (reserved for the writer)")
    _check_clean(path)


def _windows_problem(name: str) -> str | None:
    """Windows' own name rules, then the Windows writer's reserved names (in any case: NTFS)."""
    if name.casefold().startswith(WINDOWS_TMP_PREFIX):
        return (
            f"is reserved for the writer's temporary files ('{WINDOWS_TMP_PREFIX}*', removed "
            "from every directory of the volume at each write)"
        )
    return name_problem(name)


def _check_clean(path: str) -> None:
    """Refuse a path Go's ``filepath.Clean`` would change, as upstream's ``fileutil.Validate``
    does before writing (it does not normalize: ``foo////bar`` is refused, its own test).

    Refusing rather than cleaning also keeps one spelling per file, so two entries cannot name
    the same file ("a/b" and "a//b"). The message gives the clean form the owner should use.
    """
    clean = posixpath.normpath(path)
    if clean == path and path != ".":
        return
    hint = f"; use {_show(clean)}" if clean != "." else ""
    raise _invalid(path, f"must be in clean form (no '.' elements, '//' or trailing '/'){hint}")


def validate_mode(path: str, mode: int) -> None:
    if isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= MAX_MODE:
        shown = f"{mode:#o}" if isinstance(mode, int) else repr(mode)
        raise PayloadError(f"invalid mode {shown} for file path {_show(path)}: must be 0o0..0o777")


def first_component(path: str) -> str:
    """The top-level name a payload path is exposed under (one symlink per component)."""
    return path.split("/", 1)[0]


def _check_layout(paths: Sequence[str], *, windows: bool = False) -> None:
    """Reject duplicates and a path that is both a file and a parent directory of another
    (compared case-insensitively for a Windows node)."""
    key = name_key if windows else str
    seen: dict[str, str] = {}
    for path in paths:
        if key(path) in seen:
            same = (
                ""
                if seen[key(path)] == path
                else f" (the same file as {seen[key(path)]!r} on Windows: NTFS compares names "
                "case-insensitively)"
            )
            raise PayloadError(f"duplicate file path {_show(path)}{same}")
        seen[key(path)] = path
    for path in paths:
        parent = posixpath.dirname(path)
        while parent:
            if key(parent) in seen:
                raise PayloadError(
                    f"file path {_show(seen[key(parent)])} is also a directory of {_show(path)}"
                )
            parent = posixpath.dirname(parent)


def validate_payload(
    files: Sequence[SecretFile], *, max_total_bytes: int, windows: bool = False
) -> None:
    """Validate every path and mode, the layout, and the total size of a volume's files."""
    total = 0
    for file in files:
        validate_path(file.path, windows=windows)
        validate_mode(file.path, file.mode)
        total += len(file.contents)
        if total > max_total_bytes:
            raise PayloadError(
                f"payload exceeds the limit of {max_total_bytes} bytes at file path "
                f"{_show(file.path)} ({len(files)} files); --max-payload-size raises it"
            )
    _check_layout([file.path for file in files], windows=windows)
