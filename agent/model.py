"""Plain data shared by every layer. No I/O here, and no secret material in any ``repr``."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

# Volume-context keys kubelet sends for a CSI inline volume with podInfoOnMount/tokenRequests.
POD_NAME = "csi.storage.k8s.io/pod.name"
POD_NAMESPACE = "csi.storage.k8s.io/pod.namespace"
POD_UID = "csi.storage.k8s.io/pod.uid"
SERVICE_ACCOUNT_NAME = "csi.storage.k8s.io/serviceAccount.name"
SERVICE_ACCOUNT_TOKENS = "csi.storage.k8s.io/serviceAccount.tokens"
EPHEMERAL = "csi.storage.k8s.io/ephemeral"
SECRET_PROVIDER_CLASS = "secretProviderClass"  # noqa: S105 (a key name)

DEFAULT_FILE_MODE = 0o644

# Annotations the agent reads on SecretProviderClasses and pods (docs/rotation.md). Only keys
# under this prefix are kept in the caches: a pod's or class's other annotations (e.g. kubectl's
# last-applied-configuration, a copy of the whole object) would only cost memory.
ANNOTATION_PREFIX = "secrets-store.csi.k8s.io/"
ROTATION_POLL_INTERVAL_ANNOTATION = ANNOTATION_PREFIX + "rotation-poll-interval"
REFRESH_NOW_ANNOTATION = ANNOTATION_PREFIX + "refresh-now"
FETCH_PER_POD_ANNOTATION = ANNOTATION_PREFIX + "rotation-fetch-per-pod"


@dataclass(frozen=True, slots=True)
class ServiceAccountToken:
    """A kubelet-issued token for one audience. The token text never appears in a repr."""

    token: str = field(repr=False)
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PodIdentity:
    """Who the volume is mounted for; providers authenticate as this pod."""

    namespace: str
    name: str
    uid: str
    service_account: str = ""
    tokens: Mapping[str, ServiceAccountToken] = field(default_factory=dict, repr=False)

    def token_for(self, audience: str) -> ServiceAccountToken | None:
        return self.tokens.get(audience)

    @property
    def audiences(self) -> tuple[str, ...]:
        return tuple(sorted(self.tokens))


@dataclass(frozen=True, slots=True)
class SecretFile:
    """One file of a volume: a relative path, an exact mode and the bytes to write."""

    path: str
    mode: int
    contents: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class ObjectVersion:
    id: str
    version: str


@dataclass(frozen=True, slots=True)
class MountResult:
    """What a provider returns for a whole volume (all-or-nothing)."""

    files: tuple[SecretFile, ...]
    versions: tuple[ObjectVersion, ...]


@dataclass(frozen=True, slots=True)
class ProviderRequest:
    """Everything a provider needs for one volume.

    ``attributes`` is upstream's flat map: SPC parameters overlaid by the volume context
    (including the tokens key, as upstream plugins expect). ``secrets`` is the
    node-publish secret data.
    """

    attributes: Mapping[str, str]
    secrets: Mapping[str, str] = field(repr=False)
    identity: PodIdentity
    target_path: str
    default_mode: int = DEFAULT_FILE_MODE
    current_versions: tuple[ObjectVersion, ...] = ()


@dataclass(frozen=True, slots=True)
class SecretProviderClass:
    name: str
    namespace: str
    provider: str
    parameters: Mapping[str, str]
    secret_objects: tuple[Mapping[str, object], ...] = ()
    uid: str = ""
    generation: int = 0
    # metadata.annotations under ANNOTATION_PREFIX (rotation interval, refresh-now).
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PublishRequest:
    """A NodePublishVolume call, reduced to what the use case needs."""

    volume_id: str
    target_path: str
    has_capability: bool
    readonly: bool
    volume_context: Mapping[str, str]
    secrets: Mapping[str, str] = field(repr=False)
    # VolumeCapability.MountVolume.volume_mount_group as sent: the pod's fsGroup in decimal,
    # empty when the pod has none (``publish_request.mount_group_of`` parses it).
    volume_mount_group: str = ""


@dataclass(frozen=True, slots=True)
class PodStatus:
    """Mirror of a SecretProviderClassPodStatus object: what is mounted where, with versions."""

    name: str
    namespace: str
    pod_name: str
    pod_uid: str
    spc_name: str
    target_path: str
    node_name: str
    mounted: bool
    objects: tuple[ObjectVersion, ...]


@dataclass(frozen=True, slots=True)
class OwnerReference:
    api_version: str
    kind: str
    name: str
    uid: str
    # Kept as found on objects the agent did not write, so an update never changes them.
    controller: bool = False
    block_owner_deletion: bool = False


@dataclass(frozen=True, slots=True)
class PodInfo:
    """What the agent keeps of a pod on its node (the pod informer's cache entry)."""

    namespace: str
    name: str
    uid: str
    phase: str = ""
    terminating: bool = False  # metadata.deletionTimestamp is set
    service_account: str = ""
    owners: tuple[OwnerReference, ...] = ()
    # metadata.annotations under ANNOTATION_PREFIX (refresh-now).
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        """Succeeded or Failed: its containers will not run again, its volumes can go."""
        return self.phase in ("Succeeded", "Failed")


def pod_status_name(pod: str, namespace: str, spc: str) -> str:
    """Upstream's SPCPS naming: ``<pod>-<namespace>-<spc>``."""
    return f"{pod}-{namespace}-{spc}"


@dataclass(frozen=True, slots=True)
class FetchContext:
    """What kubelet last sent for a volume besides the pod's tokens: the volume attributes
    (without the tokens key; the tokens live in ``PodIdentity``) and the node-publish
    secrets. Kept in memory only, so a rotation fetches as a republish would; never persisted
    (after a restart, kubelet's next republish brings it again)."""

    volume_context: Mapping[str, str]
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(slots=True)
class VolumeRecord:
    """One entry of the mount table; also persisted (minus tokens and context) beside the
    volume."""

    target_path: str
    volume_id: str
    pod: PodIdentity
    spc_name: str
    provider: str
    versions: tuple[ObjectVersion, ...] = ()
    mounted_at: float = 0.0
    updated_at: float = 0.0  # wall clock of the last fetch (publish or rotation)
    context: FetchContext | None = field(default=None, repr=False)
    # The group every written file and directory gets (the pod's fsGroup); None: the agent's.
    mount_group: int | None = None


# Upstream's label on every synced Secret (its cache of Secrets is filtered on it, upstream §7).
MANAGED_LABEL = "secrets-store.csi.k8s.io/managed"


@dataclass(frozen=True, slots=True)
class SecretObject:
    """A Kubernetes Secret as secret sync reads and writes it. ``data`` never appears in a repr.

    ``resource_version`` and ``uid`` are empty for a Secret still to be created.
    """

    namespace: str
    name: str
    type: str
    data: Mapping[str, bytes] = field(repr=False)
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    owners: tuple[OwnerReference, ...] = ()
    immutable: bool = False
    resource_version: str = ""
    uid: str = ""

    @property
    def managed(self) -> bool:
        """Written by secret sync (this agent or the upstream driver), so sync may change it."""
        return self.labels.get(MANAGED_LABEL) == "true"

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


class VolumeContent(enum.Enum):
    """What a mounted target holds, judged by names only (``agent.fs.layout``)."""

    EMPTY = "empty"  # nothing: mounted, never written (the agent died before writing)
    PARTIAL = "partial"  # only the agent's artefacts and no ``..data``: a write that did not finish
    COMPLETE = "complete"  # the atomic writer's whole layout
    FOREIGN = "foreign"  # something the agent's writer does not make


@dataclass(frozen=True, slots=True)
class VolumeState:
    """A volume found at a target the mount table does not know (after a restart or a crash)."""

    content: VolumeContent
    has_metadata: bool
