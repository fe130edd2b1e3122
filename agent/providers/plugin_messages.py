"""What a plugin is sent and how its answer is read, both as upstream does (reference §4.4-4.5).

``mount_request`` builds the MountRequest (attributes and secrets as Go ``encoding/json``
text, the default mode as a JSON number string); a ``MountResponseReader`` turns one plugin's
MountResponses into a MountResult with upstream's checks in order: the provider's error code
(bounded, for messages and metric labels), then missing object versions; file modes keep
their permission bits only. agent/providers/plugin.py makes the calls.
"""

from __future__ import annotations

import re

import structlog

from agent._proto import v1alpha1 as pb
from agent.errors import ProviderError
from agent.model import MountResult, ObjectVersion, ProviderRequest, SecretFile
from agent.providers.common.gojson import string_map

log = structlog.get_logger("agent.providers.plugin")

LARGE_RESPONSE_BYTES = 1024 * 1024  # upstream logs above this: Secret sync may hit etcd limits
MAX_ERROR_CODE = 64  # characters of a plugin's error.code kept
MAX_ERROR_TYPES = 32  # distinct error.code values per plugin used as metric labels
_NOT_IN_CODE = re.compile(r"[^A-Za-z0-9_.:-]")


def mount_request(request: ProviderRequest) -> pb.MountRequest:
    """The MountRequest upstream builds (reference §4.4); the tokens are already in attributes."""
    return pb.MountRequest(
        attributes=string_map(request.attributes),
        # Kubelet's secrets map is nil (JSON null) when the pod has no nodePublishSecretRef.
        secrets=string_map(request.secrets or None),
        target_path=request.target_path,
        permission=str(request.default_mode),  # json.Marshal(os.FileMode(0o644)) == "420"
        current_object_version=[
            pb.ObjectVersion(id=v.id, version=v.version) for v in request.current_versions
        ],
    )


class MountResponseReader:
    """Reads the MountResponses of the plugin ``name`` (which its messages and logs name)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._error_types: set[str] = set()

    def read(self, response: pb.MountResponse) -> MountResult:
        """Upstream's checks in order (reference §4.5)."""
        code = response.error.code if response.error is not None else ""
        if code:
            shown = bounded_error_code(code)
            raise ProviderError(
                f"provider {self.name!r}: mount request failed with provider error code {shown}",
                reason=self._error_type(shown),
            )
        if not response.object_version:
            raise ProviderError(f"provider {self.name!r}: missing object versions")
        files = tuple(
            SecretFile(f.path, self._permission_bits(f.path, f.mode), f.contents)
            for f in response.files
        )
        versions = tuple(ObjectVersion(v.id, v.version) for v in response.object_version)
        # Upstream measures proto.Size(resp); re-encoding to measure would cost more than the
        # payload bytes, which dominate it and are what a synced Secret has to hold.
        size = sum(len(f.path) + len(f.contents) for f in files)
        if size > LARGE_RESPONSE_BYTES:
            log.info(
                "plugin.large_response",
                provider=self.name,
                bytes=size,
                note="above 1MiB, secret sync may fail",
            )
        # No files with versions: a legacy plugin wrote into target_path itself (upstream #551).
        return MountResult(files, versions)

    def _error_type(self, code: str) -> str:
        """The metrics' ``error_type`` for a provider's code: the code itself, as upstream,
        for the first ``MAX_ERROR_TYPES`` distinct codes of this plugin; GRPCProviderError
        after that, so a plugin cannot grow the metrics without bound."""
        if code in self._error_types or len(self._error_types) < MAX_ERROR_TYPES:
            self._error_types.add(code)
            return code
        return ProviderError.reason

    def _permission_bits(self, path: str, mode: int) -> int:
        """The permission bits of a plugin's file mode, as upstream's writer keeps them.

        Upstream writes with ``os.FileMode(mode)``: of an int's low bits only the permission
        bits survive (Go's setuid, setgid and sticky flags are its high bits, 1<<23 and up,
        so 0o4755 writes 0o755), and the high bits it would honour are dropped here too:
        setuid, setgid and sticky never reach a file. Anything dropped is logged, by file.
        """
        kept = mode & 0o777
        if kept != mode:
            log.warning(
                "plugin.mode_bits_dropped",
                provider=self.name,
                path=path,
                mode=oct(mode),
                written=oct(kept),
            )
        return kept


def bounded_error_code(code: str) -> str:
    """A plugin's ``error.code`` as the agent shows it (message, metric label): upstream's
    values (``FailedToMount``, ``GRPCProviderError``, a provider's own CamelCase codes) pass
    unchanged; any other character becomes ``_``, and at most MAX_ERROR_CODE are kept."""
    return _NOT_IN_CODE.sub("_", code[:MAX_ERROR_CODE])
