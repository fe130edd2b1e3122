"""``provider: greeting``: an example third-party in-process provider (see README.md)."""

from __future__ import annotations

import hashlib

from agent.errors import InvalidSecretProviderClass
from agent.model import MountResult, ObjectVersion, ProviderRequest, SecretFile
from agent.providers.common.goyaml import Decoder, load
from agent.providers.registry import ProviderContext


class GreetingProvider:
    def __init__(self, name: str) -> None:
        self.name = name

    async def mount(self, request: ProviderRequest) -> MountResult:
        document = load(request.attributes.get("objects", ""), Decoder.YAML_V3, where="objects")
        files, versions = [], []
        for item in document.sequence():
            fields = item.struct()
            name = fields.string("objectName", required=True)
            greeting = fields.string("greeting") or "Hello"
            if "/" in name:
                raise InvalidSecretProviderClass(f"{item.where}.objectName: must be a file name")
            pod = request.identity
            content = f"{greeting}, {pod.namespace}/{pod.name}!".encode()
            files.append(SecretFile(name, request.default_mode, content))
            versions.append(ObjectVersion(name, hashlib.sha256(content).hexdigest()[:12]))
        if not files:
            raise InvalidSecretProviderClass("objects: no objects configured")
        return MountResult(tuple(files), tuple(versions))


def factory(context: ProviderContext) -> GreetingProvider:
    return GreetingProvider(context.name)
