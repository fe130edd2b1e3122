"""The volume stack for a node platform: mounter, writer, metadata store and file reader.

Linux: tmpfs (or a directory, ``--mount-mode=directory``) reached through descriptors opened
without following symlinks, and the ``..data``-swap atomic writer. Windows: a directory on the
node's disk reached by checked paths, and the per-file replacing writer
(``agent.fs.windows``). The composition root asks for one and never looks inside.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from agent.errors import ConfigError
from agent.fs.atomic_writer import AsyncPayloadWriter
from agent.fs.capacity import VolumeCapacity
from agent.fs.confined import KubeletVolumes
from agent.fs.metadata import JsonVolumeMetadata
from agent.fs.mounter import make_mounter
from agent.fs.named_files import read_named_files
from agent.platform import NodePlatform
from agent.ports_volumes import PayloadWriter, VolumeFileReader, VolumeMetadataStore, VolumeMounter
from agent.targets import TargetRules


@dataclass(frozen=True, slots=True)
class VolumeStack:
    mounter: VolumeMounter
    writer: PayloadWriter
    metadata: VolumeMetadataStore
    read_files: VolumeFileReader
    capacity: VolumeCapacity


def build_volume_stack(
    platform: NodePlatform,
    targets: TargetRules,
    *,
    mount_mode: str,
    tmpfs_size: int | None,
    max_total_bytes: int,
) -> VolumeStack:
    """The stack for ``platform``; ConfigError for a mount mode the platform cannot do."""
    if platform.windows:
        return _windows_stack(platform, targets, mount_mode, max_total_bytes)
    volumes = KubeletVolumes(targets, tmpfs_only=mount_mode == "tmpfs")
    capacity = VolumeCapacity(tmpfs=mount_mode == "tmpfs", size_bytes=tmpfs_size)
    return VolumeStack(
        mounter=make_mounter(mount_mode, volumes, tmpfs_size),
        writer=AsyncPayloadWriter(volumes, max_total_bytes=max_total_bytes, capacity=capacity),
        metadata=JsonVolumeMetadata(volumes, capacity),
        read_files=partial(read_named_files, volumes),
        capacity=capacity,
    )


def _windows_stack(
    platform: NodePlatform, targets: TargetRules, mount_mode: str, max_total_bytes: int
) -> VolumeStack:
    # Imported here: a Linux node never loads the Windows stack.
    from agent.fs.windows.metadata import PathVolumeMetadata
    from agent.fs.windows.mounter import WindowsDirectoryMounter
    from agent.fs.windows.reader import WindowsVolumeReader
    from agent.fs.windows.volumes import PathVolumes
    from agent.fs.windows.writer import FileReplaceWriter

    if mount_mode != "directory":
        raise ConfigError(f"--mount-mode: {mount_mode} is not available on Windows; use directory")
    volumes = PathVolumes(targets, platform.local_root)
    capacity = VolumeCapacity(tmpfs=False)
    return VolumeStack(
        mounter=WindowsDirectoryMounter(volumes),
        writer=FileReplaceWriter(
            volumes,
            max_total_bytes=max_total_bytes,
            capacity=capacity,
            long_paths=platform.long_paths,
        ),
        metadata=PathVolumeMetadata(volumes, capacity),
        read_files=WindowsVolumeReader(volumes),
        capacity=capacity,
    )
