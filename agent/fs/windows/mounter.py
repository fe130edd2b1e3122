"""``VolumeMounter`` of a Windows node: a plain directory, as upstream does on Windows.

Nothing is mounted; the target directory on the node's disk is the volume, and a non-empty
target counts as mounted (upstream's Windows rule). Content is removed only when it is the
agent's own (``agent.fs.windows.layout``); a target holding anything else is refused with
InvalidArgument and left as it is. Paths are checked component by component
(``agent.fs.windows.volumes``); no POSIX directory descriptor is used.
"""

from __future__ import annotations

import contextlib
import os

from agent import crashpoints
from agent.aio.threads import run_blocking
from agent.errors import InvalidRequest, MountError, MountPointError
from agent.fs.layout import METADATA_FILE, Survey, refuse_foreign
from agent.fs.windows.entries import remove_path
from agent.fs.windows.layout import MANIFEST_FILE, survey_directory
from agent.fs.windows.volumes import PathVolumes
from agent.model import VolumeState
from agent.targets import KubeletTarget

# Removed last, so an unpublish cut short still finds the rest by them.
_LAST = (METADATA_FILE, MANIFEST_FILE)


class WindowsDirectoryMounter:
    def __init__(self, volumes: PathVolumes) -> None:
        self.volumes = volumes

    async def is_mounted(self, target: str) -> bool:
        return await run_blocking(self._is_mounted_sync, target)

    async def inspect(self, target: str) -> VolumeState | None:
        return await run_blocking(self.inspect_blocking, target)

    async def mount(self, target: str) -> None:
        await run_blocking(self.mount_blocking, target)

    async def unmount(self, target: str) -> None:
        await run_blocking(self._unmount_sync, target)

    async def discover(self) -> list[str]:
        return await run_blocking(self._discover_sync)

    def _directory(self, spec: KubeletTarget) -> str | None:
        try:
            return self.volumes.target_dir(spec)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise MountPointError(
                f"failed to check if target path {spec.path} is mount point: {exc.strerror or exc}"
            ) from None

    def _is_mounted_sync(self, target: str) -> bool:
        directory = self._directory(self.volumes.parse(target))
        if directory is None:
            return False
        with os.scandir(directory) as entries:
            return next(entries, None) is not None

    def inspect_blocking(self, target: str) -> VolumeState | None:
        spec = self.volumes.parse(target)
        directory = self._directory(spec)
        if directory is None:
            return None
        try:
            found = survey_directory(directory)
        except OSError as exc:
            raise MountPointError(
                f"failed to read target path {target}: {exc.strerror or exc}"
            ) from None
        if not found.artefacts and not found.foreign:
            return None
        if found.foreign and not found.has_metadata:
            raise refuse_foreign(spec, found.foreign)
        return VolumeState(found.content, found.has_metadata)

    def mount_blocking(self, target: str) -> None:
        spec = self.volumes.parse(target)
        try:
            self.volumes.make_target(spec)
        except OSError as exc:
            raise MountError(f"failed to create {target}: {exc.strerror or exc}") from None
        crashpoints.reached("publish.target_created")
        crashpoints.reached("publish.mounted")

    def _unmount_sync(self, target: str) -> None:
        spec = self.volumes.parse(target)
        directory = self._directory(spec)
        if directory is None:
            return
        try:
            found = survey_directory(directory)
            if found.foreign:
                raise refuse_foreign(spec, found.foreign)
            _remove_artefacts(directory, found)
            crashpoints.reached("unpublish.cleared")
            os.rmdir(directory)
            crashpoints.reached("unpublish.removed")
        except FileNotFoundError:
            return
        except OSError as exc:
            raise MountError(f"failed to unmount {target}: {exc.strerror or exc}") from None

    def _discover_sync(self) -> list[str]:
        found = []
        for target in self.volumes.candidate_targets():
            with contextlib.suppress(OSError, InvalidRequest, MountPointError):
                if self._is_mounted_sync(target):
                    found.append(target)
        return found


def _remove_artefacts(directory: str, found: Survey) -> None:
    """Remove every artefact (the manifest and metadata last); raise the first error at the
    end, so one stuck file does not keep the other secrets on disk."""
    ordered = [n for n in found.artefacts if n not in _LAST] + [
        n for n in _LAST if n in found.artefacts
    ]
    first_error: OSError | None = None
    for name in ordered:
        try:
            remove_path(os.path.join(directory, name))
        except OSError as exc:
            first_error = first_error or exc
    if first_error is not None:
        raise first_error
