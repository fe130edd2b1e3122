r"""Kubelet target paths on a Windows node: ``C:\var\lib\kubelet\pods\<uid>\volumes\...``.

The same shape as on Linux (``agent.targets``), with Windows path semantics:

- the root and every target are drive-absolute (``C:\...``); UNC (``\\server\share``) and
  device paths (``\\?\``, ``\\.\``) are refused: kubelet publishes into its own directory on a
  local drive, and a device path would skip the Win32 name checks;
- the separator is ``\`` and the path must be normalized (``/``, ``\\``, ``.`` and ``..``
  components are refused, as on Linux);
- NTFS names are case-insensitive: the root and the fixed names (``pods``, ``volumes``,
  ``kubernetes.io~csi``, ``mount``) match in any case of their ASCII letters (a non-ASCII
  look-alike that Python's case folding equates, like the KELVIN SIGN for ``k``, is
  refused), and the parsed target's ``path`` is rebuilt in one canonical spelling (the
  configured root, lower-case fixed names), which the agent then uses as the volume's key;
  so ``c:\VAR\...`` and ``C:\var\...`` are one volume with one lock, never two;
- the pod UID and the volume name must be names kubelet makes (pod UIDs and DNS-1123 labels:
  lower-case letters, digits, ``-``, ``.``, ``_``) and pass ``agent.platform.winnames`` (no
  stream, no 8.3 short name, no device name): nothing else can alias another pod's directory.
"""

from __future__ import annotations

import ntpath
import re
import string

from agent.errors import ConfigError, InvalidRequest
from agent.platform.winnames import NAMING_DOC, STREAMS_DOC, name_problem
from agent.targets import (
    CSI_PLUGIN_DIR,
    MOUNT_DIR,
    PODS_DIR,
    VOLUMES_DIR,
    KubeletTarget,
    TargetRules,
    shown,
)

MAX_LONG_PATH_CHARS = 32767  # the longest path Windows takes at all (UTF-16 code units)
_DRIVE_ABSOLUTE = re.compile(r"^[A-Za-z]:\\")
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_KUBELET_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


class WindowsTargetRules(TargetRules):
    """Target-path string rules of a Windows node; every rejection is InvalidRequest."""

    windows = True

    def __init__(self, kubelet_root: str) -> None:  # no super(): the POSIX root rules differ
        normalized = ntpath.normpath(kubelet_root) if kubelet_root else ""
        if not _DRIVE_ABSOLUTE.match(normalized) or "\0" in normalized:
            raise ConfigError(
                f"--kubelet-root-dir: {kubelet_root!r} is not a drive-absolute Windows path "
                "(like C:\\var\\lib\\kubelet)"
            )
        self.root = normalized

    def parse(self, path: str) -> KubeletTarget:
        check_clean_windows(path)
        prefix = self.root.rstrip("\\") + "\\"
        if not ascii_case_equal(path[: len(prefix)], prefix):
            raise InvalidRequest(
                f"Target path must be below the kubelet root directory {self.root} "
                f"(--kubelet-root-dir): got {shown(path)}"
            )
        parts = path[len(prefix) :].split("\\")
        fixed = (PODS_DIR, None, VOLUMES_DIR, CSI_PLUGIN_DIR, None, MOUNT_DIR)
        if len(parts) != len(fixed) or any(
            want is not None and not ascii_case_equal(part, want)
            for part, want in zip(parts, fixed, strict=True)
        ):
            raise InvalidRequest(
                f"Target path must have kubelet's shape {prefix}pods\\<pod uid>\\volumes\\"
                f"{CSI_PLUGIN_DIR}\\<volume>\\mount: got {shown(path)}"
            )
        for what, part in (("pod UID", parts[1]), ("volume name", parts[4])):
            problem = name_problem(part)
            if problem is None and not _KUBELET_NAME.fullmatch(part):
                problem = "is not a name kubelet makes (lower-case letters, digits, '-', '.', '_')"
            if problem is not None:
                raise InvalidRequest(f"Target path's {what} {shown(part)} {problem}")
        uid, volume = parts[1], parts[4]
        return KubeletTarget(
            path=self.target_for(uid, volume),
            root=self.root,
            pod_uid=uid,
            volume=volume,
            separator="\\",
        )

    def target_for(self, pod_uid: str, volume: str) -> str:
        return ntpath.join(
            self.root, PODS_DIR, pod_uid, VOLUMES_DIR, CSI_PLUGIN_DIR, volume, MOUNT_DIR
        )


def ascii_case_equal(spelling: str, name: str) -> bool:
    """Whether ``spelling`` names ``name`` on NTFS for certain: equal but for the case of ASCII
    letters. Python's case folding equates more (KELVIN SIGN and ``k``, long s and ``s``)
    than a volume's upcase table may; such a spelling could be another directory."""
    return spelling.translate(_ASCII_LOWER) == name.translate(_ASCII_LOWER)


def check_clean_windows(path: str) -> None:
    """Drive-absolute, normalized, no stream or device syntax, within Windows' length limit.

    Names below the kubelet root are checked by the caller, which knows where the root ends.
    """
    if "\0" in path:
        raise InvalidRequest(f"Target path must not contain NUL: {shown(path)}")
    if path.startswith(("\\\\", "//")):
        raise InvalidRequest(
            f"Target path must be on a local drive, not a UNC or device path ({NAMING_DOC}): "
            f"{shown(path)}"
        )
    if not _DRIVE_ABSOLUTE.match(path) or ntpath.normpath(path) != path:
        raise InvalidRequest(
            f"Target path must be drive-absolute and normalized (C:\\...\\mount, "
            f"backslashes only; {NAMING_DOC}): {shown(path)}"
        )
    if len(path.encode("utf-16-le", "surrogatepass")) // 2 > MAX_LONG_PATH_CHARS:
        raise InvalidRequest(
            f"Target path must be at most {MAX_LONG_PATH_CHARS} characters long ({NAMING_DOC})"
        )
    if ":" in path[2:]:
        raise InvalidRequest(
            f"Target path must not name an NTFS alternate data stream (':'; {STREAMS_DOC}): "
            f"{shown(path)}"
        )
