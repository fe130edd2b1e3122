"""The agent's own AWS provider served as an upstream-style plugin on a unix socket
(``/v1alpha1.CSIDriverProvider``), so a benchmark can compare the plugin hop with the in-process
call on exactly the same provider code. Not a product: no TLS, no flags beyond the socket.

Usage: ``python -m bench.aws_plugin <socket> <role-arn>``; the AWS environment
(``AWS_ENDPOINT_URL``, ``AWS_REGION``) comes from the process environment.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Mapping

from grpclib.server import Server

from agent._proto import v1alpha1 as pb
from agent.core.pod_info import read_pod_identity
from agent.errors import AgentError
from agent.model import ProviderRequest
from agent.providers.aws import AwsProvider


class OneRole:
    """Every service account has the same IRSA role (the benchmark's pods are all alike)."""

    def __init__(self, role_arn: str) -> None:
        self._annotations = {"eks.amazonaws.com/role-arn": role_arn}

    async def annotations(self, namespace: str, name: str) -> Mapping[str, str]:
        return self._annotations


class AwsPlugin(pb.CsiDriverProviderBase):
    def __init__(self, provider: AwsProvider) -> None:
        self._provider = provider

    async def version(self, message: pb.VersionRequest) -> pb.VersionResponse:
        return pb.VersionResponse(version="v1alpha1", runtime_name="bench-aws", runtime_version="0")

    async def mount(self, message: pb.MountRequest) -> pb.MountResponse:
        attributes = json.loads(message.attributes)
        secrets = json.loads(message.secrets) or {}
        request = ProviderRequest(
            attributes=attributes,
            secrets=secrets,
            identity=read_pod_identity(attributes, secrets),
            target_path=message.target_path,
            default_mode=int(message.permission or "420"),
        )
        try:
            result = await self._provider.mount(request)
        except AgentError as err:
            return pb.MountResponse(error=pb.Error(code=err.reason))
        return pb.MountResponse(
            files=[pb.File(path=f.path, mode=f.mode, contents=f.contents) for f in result.files],
            object_version=[pb.ObjectVersion(id=v.id, version=v.version) for v in result.versions],
        )


async def serve(socket: str, role_arn: str) -> None:
    provider = AwsProvider(name="awsplugin", service_accounts=OneRole(role_arn))
    server = Server([AwsPlugin(provider)])
    await server.start(path=socket)
    os.chmod(socket, 0o600)
    try:
        await server.wait_closed()
    finally:
        await provider.close()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], sys.argv[2]))
