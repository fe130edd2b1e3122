"""Run a command as an unprivileged user (``nobody``) with this test run's Python and venv.

Usage (as root): ``unshare --mount --propagation private python -m tests.support.unprivileged
UID GID -- ARGV...``; :func:`unprivileged_prefix` builds the part before ``ARGV``.

The interpreter may live where that user cannot reach it (pyenv under ``/root``, mode 0700).
Changing the host's modes is not the test's business, so in the private mount namespace each
directory on the way to the interpreter, the venv and the repository that denies others search
permission is covered by a tmpfs (mode 0755) holding bind mounts of just the entries needed
below it. Nothing else changes: the command then runs with the user's uid and gid, no
supplementary groups and, as with any exec after ``setuid`` from root, no capabilities.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

NOBODY = 65534
REPO = Path(__file__).resolve().parents[2]


def unprivileged_prefix(uid: int = NOBODY, gid: int = NOBODY) -> list[str]:
    """The argv prefix that runs what follows it as ``uid``:``gid`` (the caller is root)."""
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        sys.executable,
        "-m",
        "tests.support.unprivileged",
        str(uid),
        str(gid),
        "--",
    ]


def needed_paths() -> list[Path]:
    """What the child must reach: the interpreter (real path), its prefixes, sys.path, repo."""
    paths = [Path(os.path.realpath(sys.executable)), Path(sys.base_prefix), Path(sys.prefix), REPO]
    paths += [Path(entry) for entry in sys.path if entry and os.path.isabs(entry)]
    return [Path(os.path.realpath(path)) for path in paths if path.exists()]


def first_closed(paths: Iterable[Path]) -> tuple[Path, set[str]] | None:
    """The outermost directory others cannot search, and which of its entries are needed."""
    for path in sorted(set(paths), key=lambda p: len(p.parts)):
        for depth in range(1, len(path.parts)):
            directory = Path(*path.parts[:depth])
            if not os.stat(directory).st_mode & stat.S_IXOTH:
                entries = {p.parts[depth] for p in paths if p.parts[:depth] == directory.parts}
                return directory, entries
    return None


def open_up(directory: Path, entries: set[str]) -> None:
    """Cover ``directory`` with a 0755 tmpfs that shows only ``entries`` (bind mounts)."""
    with tempfile.TemporaryDirectory(prefix="ssa-unpriv-") as keep:
        for name in entries:
            source, held = directory / name, Path(keep) / name
            held.mkdir() if source.is_dir() else held.touch()
            _mount("--bind", str(source), str(held))
        _mount("-t", "tmpfs", "-o", "mode=0755", "tmpfs", str(directory))
        for name in entries:
            held, target = Path(keep) / name, directory / name
            target.mkdir() if held.is_dir() else target.touch()
            _mount("--move", str(held), str(target))


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def main(argv: Sequence[str]) -> None:
    uid, gid, separator, *command = argv
    assert separator == "--" and command, "usage: UID GID -- ARGV..."
    paths = needed_paths()
    while (closed := first_closed(paths)) is not None:
        open_up(*closed)
    os.setgroups([])
    os.setgid(int(gid))
    os.setuid(int(uid))
    os.execvp(command[0], command)  # noqa: S606 (argv from the test, no shell wanted)


if __name__ == "__main__":
    main(sys.argv[1:])
