"""What ``secrets-store-agent mount`` and ``unmount`` do on the node's disk, as kubelet would:
the target path of a pod's volume (``--target``, or from ``--kubelet-root-dir``, ``--uid`` and
``--volume``), the volume directory above it that kubelet makes before NodePublishVolume (and
removes when the SetUp fails), and a listing of what got mounted."""

from __future__ import annotations

import argparse
import contextlib
import os
import stat
import uuid

from agent.errors import ConfigError
from agent.targets import TargetRules

VOLUME_DIR_MODE = 0o750  # what kubelet gives the volume directory it creates


def target_of(ns: argparse.Namespace) -> str:
    """The target path as kubelet would build it, unless ``--target`` names one."""
    if ns.target:
        return os.path.abspath(str(ns.target))
    if not ns.uid:
        ns.uid = str(uuid.uuid4())
    uid, volume = _one_directory(ns.uid, "--uid"), _one_directory(ns.volume, "--volume")
    return TargetRules(ns.kubelet_root_dir).target_for(uid, volume)


def _one_directory(value: str, flag: str) -> str:
    """Kubelet's pod UID and volume name are one directory each (a UID, a DNS label): joined
    into the target as given, ``../x`` would make directories outside the kubelet root."""
    if not value or "/" in value or value in (".", ".."):
        raise ConfigError(f"{flag}: {value!r} must be one directory name (no '/', not '.' or '..')")
    return value


def make_volume_dir(target: str) -> list[str]:
    """Kubelet creates the target's parent before NodePublishVolume; the agent never does.
    Returns the directories made, deepest first, for :func:`remove_made`."""
    parent = os.path.dirname(target)
    made, missing = [], parent
    while not os.path.lexists(missing):
        made.append(missing)
        missing = os.path.dirname(missing)
    try:
        os.makedirs(parent, mode=VOLUME_DIR_MODE, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create the volume directory {parent}: {err.strerror}") from None
    return made


def remove_made(made: list[str]) -> None:
    """Take back the directories :func:`make_volume_dir` made, as kubelet removes the volume
    directory of a failed SetUp; one that is not empty (or not there) stays as it is."""
    for path in made:
        with contextlib.suppress(OSError):
            os.rmdir(path)


def describe_volume(target: str, show_contents: bool = False) -> list[str]:
    """One line per visible file: mode, size, relative path. Reserved ``..*`` names are skipped."""
    lines = []
    for top in sorted(os.listdir(target)):
        if top.startswith(".."):
            continue
        root = os.path.join(target, top)
        paths = [root] if not os.path.isdir(root) else _walk(root)
        for path in paths:
            info = os.stat(path)
            relative = os.path.relpath(path, target)
            lines.append(f"  {stat.filemode(info.st_mode)} {info.st_size:>8}  {relative}")
            if show_contents and _regular_file_inside(path, target):
                with open(path, "rb") as handle:
                    lines.append("    " + handle.read().decode("utf-8", "replace"))
    return lines


def _regular_file_inside(path: str, target: str) -> bool:
    """Never print through a link that leads out of the volume (this runs as root)."""
    real, root = os.path.realpath(path), os.path.realpath(target)
    return os.path.commonpath([real, root]) == root and os.path.isfile(real)


def _walk(root: str) -> list[str]:
    return sorted(
        os.path.join(d, f) for d, _, files in os.walk(root, followlinks=True) for f in files
    )
