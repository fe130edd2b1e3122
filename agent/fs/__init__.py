"""Filesystem adapters: payload validation, the atomic writer, volume mounters and metadata."""

from agent.fs.atomic_writer import AsyncPayloadWriter, AtomicWriter
from agent.fs.capacity import VolumeCapacity
from agent.fs.confined import KubeletVolumes
from agent.fs.metadata import METADATA_FILE, JsonVolumeMetadata
from agent.fs.mounter import DirectoryMounter, TmpfsMounter, make_mounter
from agent.fs.paths import DEFAULT_MAX_TOTAL_BYTES, validate_payload

__all__ = [
    "DEFAULT_MAX_TOTAL_BYTES",
    "METADATA_FILE",
    "AsyncPayloadWriter",
    "AtomicWriter",
    "DirectoryMounter",
    "JsonVolumeMetadata",
    "KubeletVolumes",
    "TmpfsMounter",
    "VolumeCapacity",
    "make_mounter",
    "validate_payload",
]
