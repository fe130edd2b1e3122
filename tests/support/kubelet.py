"""A kubelet stand-in: drives the agent's CSI socket with grpcio, a different gRPC stack than the
agent's grpclib, exactly as kubelet (grpc-go) would."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TypedDict, TypeVar

import betterproto2
import grpc

from agent._proto.csi import v1 as csi

POD_UID = "11111111-2222-3333-4444-555555555555"

Reply = TypeVar("Reply", bound=betterproto2.Message)


def _method(
    channel: grpc.aio.Channel, path: str, response: type[Reply]
) -> grpc.aio.UnaryUnaryMultiCallable[betterproto2.Message, Reply]:
    return channel.unary_unary(path, request_serializer=bytes, response_deserializer=response.parse)


class NodeCalls:
    """Kubelet's two Node calls, on top of a client's ``call`` (grpcio here, grpc-go in
    ``bench/go_kubelet.py``)."""

    async def call(
        self, service: str, rpc: str, request: betterproto2.Message, response: type[Reply]
    ) -> Reply:
        raise NotImplementedError

    async def publish(self, request: csi.NodePublishVolumeRequest) -> csi.NodePublishVolumeResponse:
        return await self.call("Node", "NodePublishVolume", request, csi.NodePublishVolumeResponse)

    async def unpublish(self, volume_id: str, target_path: str) -> csi.NodeUnpublishVolumeResponse:
        request = csi.NodeUnpublishVolumeRequest(volume_id=volume_id, target_path=target_path)
        return await self.call(
            "Node", "NodeUnpublishVolume", request, csi.NodeUnpublishVolumeResponse
        )


class Kubelet(NodeCalls):
    def __init__(self, socket_path: str) -> None:
        self.channel = grpc.aio.insecure_channel(f"unix://{socket_path}")

    async def close(self) -> None:
        await self.channel.close()

    async def call(
        self, service: str, rpc: str, request: betterproto2.Message, response: type[Reply]
    ) -> Reply:
        return await _method(self.channel, f"/csi.v1.{service}/{rpc}", response)(
            request, timeout=30
        )


def kubelet_target(root: Path, volume: str = "secrets", uid: str = POD_UID) -> str:
    """``<root>/pods/<uid>/volumes/kubernetes.io~csi/<volume>/mount``, with the volume directory
    created as kubelet does before NodePublishVolume (the agent creates only ``mount``)."""
    parent = root / "pods" / uid / "volumes" / "kubernetes.io~csi" / volume
    parent.mkdir(parents=True, exist_ok=True)
    return str(parent / "mount")


class PodFields(TypedDict, total=False):
    """The pod and class keywords of :func:`publish_request`, for a test that varies them from
    a table."""

    spc: str
    pod: str
    namespace: str
    uid: str
    service_account: str


def publish_request(
    target_path: str,
    *,
    spc: str = "app-secrets",
    pod: str = "web-0",
    namespace: str = "default",
    uid: str = POD_UID,
    service_account: str = "web",
    tokens: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
    extra: Mapping[str, str] | None = None,
    readonly: bool = True,
    volume_id: str = "csi-0123456789abcdef",
    with_capability: bool = True,
    mount_group: str = "",
) -> csi.NodePublishVolumeRequest:
    """The NodePublishVolume kubelet sends for a CSI inline volume (reference §3.7);
    ``mount_group``: the pod's fsGroup as kubelet sends it to a driver with VOLUME_MOUNT_GROUP."""
    context = {
        "secretProviderClass": spc,
        "csi.storage.k8s.io/pod.name": pod,
        "csi.storage.k8s.io/pod.namespace": namespace,
        "csi.storage.k8s.io/pod.uid": uid,
        "csi.storage.k8s.io/serviceAccount.name": service_account,
        "csi.storage.k8s.io/ephemeral": "true",
    }
    if tokens:
        context["csi.storage.k8s.io/serviceAccount.tokens"] = json.dumps(
            {
                aud: {"token": t, "expirationTimestamp": "2099-01-01T00:00:00Z"}
                for aud, t in tokens.items()
            }
        )
    context.update(extra or {})
    capability = csi.VolumeCapability(
        mount=csi.VolumeCapabilityMountVolume(volume_mount_group=mount_group),
        access_mode=csi.VolumeCapabilityAccessMode(
            mode=csi.VolumeCapabilityAccessModeMode.SINGLE_NODE_WRITER
        ),
    )
    return csi.NodePublishVolumeRequest(
        volume_id=volume_id,
        target_path=target_path,
        volume_capability=capability if with_capability else None,
        readonly=readonly,
        secrets=dict(secrets or {}),
        volume_context=context,
    )
