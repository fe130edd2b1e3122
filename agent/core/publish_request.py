"""Pure checks and transforms of a NodePublishVolume request (upstream §3.5 and §4.4)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from agent.core.pod_info import tokens_json
from agent.documents.names import SUBDOMAIN_MAX, is_subdomain, shown_name, shown_value
from agent.errors import InvalidRequest, InvalidSecretProviderClass
from agent.model import (
    POD_NAME,
    POD_NAMESPACE,
    POD_UID,
    SECRET_PROVIDER_CLASS,
    SERVICE_ACCOUNT_TOKENS,
    FetchContext,
    PodIdentity,
    PublishRequest,
    SecretProviderClass,
    VolumeRecord,
    pod_status_name,
)
from agent.targets import KubeletTarget, TargetRules


def check_request(
    request: PublishRequest, targets: TargetRules
) -> tuple[PublishRequest, KubeletTarget]:
    """Upstream's validation order; each failure is InvalidArgument before anything else runs.

    The target path must also be kubelet's path for a CSI inline volume (``agent.targets``).
    Returns the request with the target path in its canonical spelling (unchanged on Linux;
    on Windows one spelling for all case variants), the key every later step uses, and that
    path split into kubelet's parts.
    """
    if not request.has_capability:
        raise InvalidRequest("Volume capability missing in request")
    if not request.volume_id:
        raise InvalidRequest("Volume ID missing in request")
    if not request.target_path:
        raise InvalidRequest("Target path missing in request")
    target = targets.parse(request.target_path)
    if not request.volume_context:
        raise InvalidRequest("Volume attributes missing in request")
    if target.path != request.target_path:
        request = dataclasses.replace(request, target_path=target.path)
    return request, target


# chown(2) takes a 32-bit gid_t and reads (gid_t)-1 as "leave the group": the highest group is
# one below. Kubernetes itself allows fsGroup 0..2147483647.
MOUNT_GROUP_MAX = 2**32 - 2
MOUNT_GROUP_FIELD = "volume_capability.mount.volume_mount_group"
_DECIMAL = re.compile(r"[0-9]{1,20}")


def mount_group_of(request: PublishRequest) -> int | None:
    """The group the volume's files get: the pod's ``fsGroup``, which kubelet sends in decimal
    as ``VolumeCapability.MountVolume.volume_mount_group`` to a driver that advertises the
    VOLUME_MOUNT_GROUP node capability (CSI spec; kubelet's CSI mounter), and leaves empty for
    a pod without one (None here). Anything but a decimal integer 0..4294967294 (no sign, no
    spaces) is InvalidRequest naming the field, the value quoted and cut at 80 characters."""
    value = request.volume_mount_group
    if not value:
        return None
    if _DECIMAL.fullmatch(value) and int(value) <= MOUNT_GROUP_MAX:
        return int(value)
    raise InvalidRequest(
        f"{MOUNT_GROUP_FIELD}: {shown_value(value)} is not a group ID (a decimal integer from "
        f"0 to {MOUNT_GROUP_MAX}; kubelet sends the pod's securityContext.fsGroup)"
    )


def check_pod_directory(identity: PodIdentity, target: KubeletTarget) -> None:
    """Kubelet publishes a pod's volume below that pod's own directory
    (``pods/<pod uid>/volumes/...``); a request whose ``csi.storage.k8s.io/pod.uid`` names
    another pod would record a volume that pod cleanup and the restart's status check
    attribute to the wrong pod. InvalidRequest naming the key, both UIDs quoted and cut at 80
    characters (``agent.documents.names.shown_value``)."""
    in_path = target.pod_uid
    if identity.uid != in_path:
        raise InvalidRequest(
            f"{POD_UID} in volume context: {shown_value(identity.uid)} is not the pod directory "
            f"of the target path ({shown_value(in_path)}); kubelet sends the same pod UID in both"
        )


def check_status_name(identity: PodIdentity, spc_name: str) -> None:
    """The volume's SecretProviderClassPodStatus is named ``<pod>-<namespace>-<class>``
    (upstream §6), which can pass the API server's 253 characters (a DNS-1123 subdomain) though
    each part is a valid name. Upstream's create of that status is then refused, so its first
    publish fails after the provider call and unmounts; here it fails before anything is asked
    or mounted, in both modes (a standalone status file holds any such name too), with
    InvalidRequest naming the cause and the names, quoted and cut. A class name that is not
    itself a Kubernetes name is left to the class lookup, which says so."""
    if not is_subdomain(spc_name):
        return
    length = len(pod_status_name(identity.name, identity.namespace, spc_name))
    if length > SUBDOMAIN_MAX:
        raise InvalidRequest(
            f"the pod's SecretProviderClassPodStatus name (<pod>-<namespace>-<class>) would be "
            f"{length} characters, over the Kubernetes limit of {SUBDOMAIN_MAX}: pod "
            f"{identity.namespace}/{shown_name(identity.name)}, {SECRET_PROVIDER_CLASS} "
            f"{shown_name(spc_name)}; shorten the pod's or the class's name"
        )


def check_republish(record: VolumeRecord, identity: PodIdentity, spc_name: str) -> None:
    """A mounted target is one pod's volume of one class, and kubelet names the same pod and
    class on every republish. A request naming others is refused (InvalidRequest naming the
    volume-context key) and the volume is left as it is: taking it over would leave the first
    pod's status behind and the volume under keys nothing unpublishes. Names are quoted and
    cut at 80 characters, as everywhere (``agent.documents.names``)."""
    for key, sent, kept in (
        (POD_NAMESPACE, identity.namespace, record.pod.namespace),
        (POD_NAME, identity.name, record.pod.name),
        (POD_UID, identity.uid, record.pod.uid),
        (SECRET_PROVIDER_CLASS, spc_name, record.spc_name),
    ):
        if sent != kept:
            raise InvalidRequest(
                f"{key} in volume context: {shown_value(sent)} differs from the volume "
                f"already mounted at this target path ({shown_value(kept)}, pod "
                f"{record.pod.namespace}/{shown_name(record.pod.name)}, class "
                f"{shown_name(record.spc_name)}); unpublish it first"
            )


def check_class(spc: SecretProviderClass) -> None:
    """What a class needs before its provider is asked (upstream's order: provider, then
    parameters); a first publish and every rotation apply it, so a class edited into one
    that publish refuses is refused by rotation too. Raises InvalidSecretProviderClass."""
    ref = f"{spc.namespace}/{spc.name}"
    if not spc.provider:
        raise InvalidSecretProviderClass(f"spec.provider is not set in secretproviderclass {ref}")
    if not spc.parameters:
        raise InvalidSecretProviderClass(f"spec.parameters is not set in secretproviderclass {ref}")


def merge_attributes(parameters: Mapping[str, str], request: PublishRequest) -> dict[str, str]:
    """SPC parameters overlaid by every volume-context key, plus the tokens.

    Volume attributes win over same-named parameters, as upstream. The tokens may have come in
    the secrets map (kubelet >= 1.35); providers still find them under the usual key.
    """
    tokens = tokens_json(request.volume_context, request.secrets)
    return merged_attributes(parameters, request.volume_context, tokens)


def merged_attributes(
    parameters: Mapping[str, str], volume_context: Mapping[str, str], tokens: str
) -> dict[str, str]:
    """``merge_attributes`` from its parts (a rotation has a kept context, not a request)."""
    merged = dict(parameters)
    merged.update(volume_context)
    if tokens:
        merged[SERVICE_ACCOUNT_TOKENS] = tokens
    return merged


def context_of(request: PublishRequest) -> FetchContext:
    """What a later fetch for this volume needs of the request, without the tokens (kept in
    the pod's identity, where a refresh replaces them)."""
    return FetchContext(
        volume_context=_without_tokens(request.volume_context),
        secrets=_without_tokens(request.secrets),
    )


def _without_tokens(values: Mapping[str, str]) -> dict[str, str]:
    return {key: value for key, value in values.items() if key != SERVICE_ACCOUNT_TOKENS}
