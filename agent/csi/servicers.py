"""CSI Identity, Node and Controller services; thin adapters from protobuf to the use cases."""

from __future__ import annotations

from grpclib.const import Status
from grpclib.exceptions import GRPCError

from agent._proto.csi import v1 as csi
from agent.aio.inflight import InFlight
from agent.core.publish import PublishVolume
from agent.core.unpublish import UnpublishVolume
from agent.csi.guard import guarded
from agent.errors import InvalidRequest
from agent.model import PublishRequest


class IdentityService(csi.IdentityBase):
    def __init__(self, driver_name: str, version: str, inflight: InFlight) -> None:
        self.driver_name = driver_name
        self.version = version
        self.inflight = inflight

    @guarded
    async def get_plugin_info(self, message: csi.GetPluginInfoRequest) -> csi.GetPluginInfoResponse:
        if not self.driver_name or not self.version:
            raise GRPCError(Status.UNAVAILABLE, "driver name or version is not configured")
        return csi.GetPluginInfoResponse(name=self.driver_name, vendor_version=self.version)

    @guarded
    async def get_plugin_capabilities(
        self, message: csi.GetPluginCapabilitiesRequest
    ) -> csi.GetPluginCapabilitiesResponse:
        # Upstream advertises CONTROLLER_SERVICE although every controller RPC is a stub;
        # csi-sanity and node-driver-registrar expect exactly this answer.
        service = csi.PluginCapabilityService(
            type=csi.PluginCapabilityServiceType.CONTROLLER_SERVICE
        )
        return csi.GetPluginCapabilitiesResponse(
            capabilities=[csi.PluginCapability(service=service)]
        )

    async def probe(self, message: csi.ProbeRequest) -> csi.ProbeResponse:
        # Not guarded: a probe during shutdown drain should still answer.
        return csi.ProbeResponse(ready=True)


class ControllerService(csi.ControllerBase):
    """Every RPC Unimplemented except the capability query (upstream behaviour)."""

    async def controller_get_capabilities(
        self, message: csi.ControllerGetCapabilitiesRequest
    ) -> csi.ControllerGetCapabilitiesResponse:
        unknown = csi.ControllerServiceCapabilityRpc(
            type=csi.ControllerServiceCapabilityRpcType.UNKNOWN
        )
        return csi.ControllerGetCapabilitiesResponse(
            capabilities=[csi.ControllerServiceCapability(rpc=unknown)]
        )


class NodeService(csi.NodeBase):
    def __init__(
        self,
        node_id: str,
        publish: PublishVolume,
        unpublish: UnpublishVolume,
        inflight: InFlight,
    ) -> None:
        self.node_id = node_id
        self.publish = publish
        self.unpublish = unpublish
        self.inflight = inflight

    @guarded
    async def node_publish_volume(
        self, message: csi.NodePublishVolumeRequest
    ) -> csi.NodePublishVolumeResponse:
        capability = message.volume_capability
        mount = capability.mount if capability is not None else None
        request = PublishRequest(
            volume_id=message.volume_id,
            target_path=message.target_path,
            has_capability=capability is not None,
            readonly=message.readonly,
            volume_context=message.volume_context,
            secrets=message.secrets,
            volume_mount_group=mount.volume_mount_group if mount is not None else "",
        )
        await self.publish(request)
        return csi.NodePublishVolumeResponse()

    @guarded
    async def node_unpublish_volume(
        self, message: csi.NodeUnpublishVolumeRequest
    ) -> csi.NodeUnpublishVolumeResponse:
        await self.unpublish(message.volume_id, message.target_path)
        return csi.NodeUnpublishVolumeResponse()

    @guarded
    async def node_stage_volume(
        self, message: csi.NodeStageVolumeRequest
    ) -> csi.NodeStageVolumeResponse:
        _require(message.volume_id, "Volume ID")
        _require(message.staging_target_path, "Staging target path")
        if message.volume_capability is None:
            raise InvalidRequest("Volume capability missing in request")
        return csi.NodeStageVolumeResponse()

    @guarded
    async def node_unstage_volume(
        self, message: csi.NodeUnstageVolumeRequest
    ) -> csi.NodeUnstageVolumeResponse:
        _require(message.volume_id, "Volume ID")
        _require(message.staging_target_path, "Staging target path")
        return csi.NodeUnstageVolumeResponse()

    async def node_get_capabilities(
        self, message: csi.NodeGetCapabilitiesRequest
    ) -> csi.NodeGetCapabilitiesResponse:
        # STAGE_UNSTAGE_VOLUME as upstream. VOLUME_MOUNT_GROUP: kubelet then sends a pod's
        # fsGroup with each publish (volume_mount_group) and applies none itself; without it a
        # read-only volume such as this one never gets the pod's group.
        kinds = (
            csi.NodeServiceCapabilityRpcType.STAGE_UNSTAGE_VOLUME,
            csi.NodeServiceCapabilityRpcType.VOLUME_MOUNT_GROUP,
        )
        return csi.NodeGetCapabilitiesResponse(
            capabilities=[
                csi.NodeServiceCapability(rpc=csi.NodeServiceCapabilityRpc(type=kind))
                for kind in kinds
            ]
        )

    async def node_get_info(self, message: csi.NodeGetInfoRequest) -> csi.NodeGetInfoResponse:
        return csi.NodeGetInfoResponse(node_id=self.node_id)

    async def node_expand_volume(
        self, message: csi.NodeExpandVolumeRequest
    ) -> csi.NodeExpandVolumeResponse:
        raise GRPCError(Status.UNIMPLEMENTED, "NodeExpandVolume is not implemented")


def _require(value: str, what: str) -> None:
    if not value:
        raise InvalidRequest(f"{what} missing in request")
