"""Filesystem adapters: payload validation, the atomic writer, volume mounters and metadata."""

from agent.fs.atomic_writer import AsyncPayloadWriter, AtomicWriter
from agent.fs.files import clear_target, read_visible_files
from agent.fs.metadata import METADATA_FILE, JsonVolumeMetadata
from agent.fs.mounter import DirectoryMounter, TmpfsMounter, make_mounter
from agent.fs.paths import DEFAULT_MAX_TOTAL_BYTES, target_pod_uid, validate_payload

__all__ = [
    "DEFAULT_MAX_TOTAL_BYTES",
    "METADATA_FILE",
    "AsyncPayloadWriter",
    "AtomicWriter",
    "DirectoryMounter",
    "JsonVolumeMetadata",
    "TmpfsMounter",
    "clear_target",
    "make_mounter",
    "read_visible_files",
    "target_pod_uid",
    "validate_payload",
]
