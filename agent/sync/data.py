"""A Secret's data from a volume's mounted files (upstream ``secretutil.GetSecretData``).

Each ``data`` entry copies the file named by ``objectName`` (its path inside the volume, an
alias where the provider gives one) to ``key``; for ``kubernetes.io/tls`` the certificate or
key part is cut out of it (``tls``). Files are read only below the kubelet root and never
through a symlink (``agent.fs.named_files``). Blocking: reads files and may parse a PFX, so
callers run ``read_volume_data`` in a worker thread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from agent.ports_volumes import VolumeFileReader
from agent.sync.spec import TLS, SecretSpec

# The API server refuses a Secret whose data exceeds 1 MiB (upstream §15 item 7).
MAX_SECRET_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class BuiltData:
    """The data of one Secret, or why it cannot be built (naming the field)."""

    spec: SecretSpec
    data: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    error: str = ""


def read_volume_data(
    target: str,
    specs: Sequence[SecretSpec],
    read_files: VolumeFileReader,
) -> list[BuiltData]:
    """Read the files every spec names (once each) and build each Secret's data.

    ``read_files`` reads a volume's named files (the node platform's: ``agent.fs.stack``; on
    Linux ``agent.fs.named_files``, which raises InvalidRequest or OSError when the target
    cannot be opened without passing through a symlink).
    """
    names = {entry.object_name for spec in specs for entry in spec.data}
    files = read_files(target, names, MAX_SECRET_BYTES)
    return [build_data(spec, files) for spec in specs]


def build_data(spec: SecretSpec, files: Mapping[str, bytes | None]) -> BuiltData:
    data: dict[str, bytes] = {}
    for entry in spec.data:
        if entry.object_name not in files:
            return BuiltData(
                spec,
                error=f"{entry.field}.objectName: no file {entry.object_name!r} is mounted in "
                f"the volume (objectName must name a mounted object or its alias) for secret "
                f"{spec.secret_name}",
            )
        content = files[entry.object_name]
        if content is None:
            return BuiltData(spec, error=_too_large(spec, f"file {entry.object_name!r}"))
        if spec.type == TLS:
            try:
                content = _tls_part(content, entry.key)
            except ValueError as err:
                return BuiltData(
                    spec,
                    error=f"{entry.field}: cannot take {entry.key} from file "
                    f"{entry.object_name!r} for secret {spec.secret_name}: {err}",
                )
        data[entry.key] = content
    if sum(len(value) for value in data.values()) > MAX_SECRET_BYTES:
        return BuiltData(spec, error=_too_large(spec, "its data"))
    return BuiltData(spec, data)


def _tls_part(content: bytes, key: str) -> bytes:
    # Imported here: only TLS secrets need the PEM/PKCS#12 code (and cryptography behind it).
    from agent.sync import tls

    if key == tls.TLS_CERT_KEY:
        return tls.certificate_part(content)
    return tls.private_key_part(content)


def _too_large(spec: SecretSpec, what: str) -> str:
    return (
        f"{spec.field}: {what} is larger than a Secret may hold (1 MiB) for secret "
        f"{spec.secret_name}"
    )
