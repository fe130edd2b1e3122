"""A kubelet-like CSI client: what ``secrets-store-agent mount``/``unmount`` send to the socket."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from grpclib.client import Channel
from grpclib.exceptions import GRPCError, StreamTerminatedError

from agent._proto.csi import v1 as csi
from agent.errors import AgentError
from agent.model import (
    EPHEMERAL,
    POD_NAME,
    POD_NAMESPACE,
    POD_UID,
    SECRET_PROVIDER_CLASS,
    SERVICE_ACCOUNT_NAME,
    SERVICE_ACCOUNT_TOKENS,
)


class CallFailed(AgentError):
    """The agent answered a CSI call with an error status."""


@dataclass(frozen=True, slots=True)
class PodVolume:
    """The pod-side facts kubelet would put into NodePublishVolume for a CSI inline volume."""

    target_path: str
    pod_name: str
    namespace: str
    pod_uid: str
    service_account: str
    secret_provider_class: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    tokens: Mapping[str, str] = field(default_factory=dict, repr=False)
    token_expiry: str = ""
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    volume_id: str = ""

    def request(self) -> csi.NodePublishVolumeRequest:
        context = dict(self.attributes)
        context.update(
            {
                SECRET_PROVIDER_CLASS: self.secret_provider_class,
                POD_NAME: self.pod_name,
                POD_NAMESPACE: self.namespace,
                POD_UID: self.pod_uid,
                SERVICE_ACCOUNT_NAME: self.service_account,
                EPHEMERAL: "true",
            }
        )
        if self.tokens:
            context[SERVICE_ACCOUNT_TOKENS] = json.dumps(
                {
                    audience: {"token": token, "expirationTimestamp": self.token_expiry}
                    for audience, token in self.tokens.items()
                }
            )
        access = csi.VolumeCapabilityAccessMode(
            mode=csi.VolumeCapabilityAccessModeMode.SINGLE_NODE_WRITER
        )
        return csi.NodePublishVolumeRequest(
            volume_id=self.volume_id or ephemeral_volume_id(self.pod_uid, self.target_path),
            target_path=self.target_path,
            volume_capability=csi.VolumeCapability(
                mount=csi.VolumeCapabilityMountVolume(), access_mode=access
            ),
            readonly=True,
            secrets=dict(self.secrets),
            volume_context=context,
        )


def ephemeral_volume_id(pod_uid: str, volume_name: str) -> str:
    """Kubelet's id for inline ephemeral volumes: ``csi-`` + hex(sha256(podUID + volumeName))."""
    return "csi-" + hashlib.sha256((pod_uid + volume_name).encode()).hexdigest()


async def publish(socket_path: str, volume: PodVolume, timeout: float = 120.0) -> None:
    async with _node_stub(socket_path) as node:
        await _call(node.node_publish_volume(volume.request(), timeout=timeout))


async def unpublish(
    socket_path: str, volume_id: str, target_path: str, timeout: float = 120.0
) -> None:
    async with _node_stub(socket_path) as node:
        request = csi.NodeUnpublishVolumeRequest(volume_id=volume_id, target_path=target_path)
        await _call(node.node_unpublish_volume(request, timeout=timeout))


@asynccontextmanager
async def _node_stub(socket_path: str) -> AsyncIterator[csi.NodeStub]:
    channel = Channel(path=socket_path)
    try:
        yield csi.NodeStub(channel)
    finally:
        channel.close()


async def _call(pending: Awaitable[object]) -> None:
    """Turn transport and status errors into one message a person can act on."""
    try:
        await pending
    except GRPCError as err:
        raise CallFailed(f"{err.status.name}: {err.message}") from None
    except StreamTerminatedError:
        raise CallFailed("the agent closed the connection (is it shutting down?)") from None
    except (ConnectionError, OSError) as err:
        raise CallFailed(f"cannot reach the agent: {err.strerror or err}") from None
