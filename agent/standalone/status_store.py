"""SecretProviderClassPodStatus records as YAML files (standalone mode, no Kubernetes API).

Each status is the object upstream would create (upstream §6, §10.2), written to
``<dir>/status/<namespace>/<name>.yaml`` so an operator can ``cat`` what is mounted where and a
restarted agent can rebuild its view with :meth:`DirectoryPodStatusStore.load_all`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path

import structlog
import yaml

from agent.aio.threads import run_blocking
from agent.documents.pod_status import from_manifest, to_manifest
from agent.errors import StatusError
from agent.model import PodStatus
from agent.standalone.yaml_codec import SafeLoader

FILE_MODE = 0o644  # status is not secret; readable by whoever inspects the node

# Names become path components: allow Kubernetes object-name characters only, so a crafted
# pod or class name can never step outside the status directory.
# 250 characters at most: with ".yaml" that is the longest file name most filesystems allow.
_SAFE_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,248}[A-Za-z0-9])?")

log = structlog.get_logger(__name__)


class DirectoryPodStatusStore:
    """Implements ``ports.PodStatusStore`` with one YAML file per status object."""

    def __init__(self, directory: Path) -> None:
        self.root = Path(directory) / "status"

    def path_for(self, namespace: str, name: str) -> Path:
        for value, what in ((namespace, "namespace"), (name, "name")):
            if not _SAFE_NAME.fullmatch(value):
                raise StatusError(f"invalid pod status {what} {value!r}")
        return self.root / namespace / f"{name}.yaml"

    async def upsert(self, status: PodStatus) -> None:
        await run_blocking(self.upsert_blocking, status)

    def upsert_blocking(self, status: PodStatus) -> None:
        """:meth:`upsert` in the calling worker thread (``ports.BlockingPodStatusStore``)."""
        path = self.path_for(status.namespace, status.name)
        # Compact JSON is valid YAML and produced by the C encoder, far faster than PyYAML's
        # Python-side representer (or json's indent mode); this write is on the publish path.
        text = json.dumps(to_manifest(status)) + "\n"
        try:
            _write_atomically(path, text.encode())
        except OSError as exc:
            raise StatusError(
                f"cannot write pod status {status.namespace}/{status.name}: {exc.strerror}"
            ) from exc

    async def delete(self, namespace: str, name: str) -> None:
        path = self.path_for(namespace, name)
        try:
            await run_blocking(path.unlink, missing_ok=True)
        except OSError as exc:
            raise StatusError(
                f"cannot delete pod status {namespace}/{name}: {exc.strerror}"
            ) from exc

    async def load_all(self) -> list[PodStatus]:
        """Every readable status, sorted by namespace and name; broken files are skipped."""
        loaded, problems = await run_blocking(_load_all, self.root)
        for file, reason in problems:
            log.warning("standalone.status_invalid", file=file, reason=reason)
        return loaded


def _write_atomically(path: Path, data: bytes) -> None:
    """Write to a temp file beside ``path`` and rename it over, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".status-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            # No fsync: the status describes tmpfs mounts, which do not survive a reboot either.
            handle.write(data)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _load_all(root: Path) -> tuple[list[PodStatus], list[tuple[str, str]]]:
    loaded: list[PodStatus] = []
    problems: list[tuple[str, str]] = []
    if not root.is_dir():
        return loaded, problems
    for path in sorted(root.glob("*/*.yaml")):
        try:
            document = yaml.load(path.read_text(encoding="utf-8"), Loader=SafeLoader)  # noqa: S506
            loaded.append(from_manifest(document))
        except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError) as exc:
            problems.append((str(path), " ".join(str(exc).split())))
    return loaded, problems
