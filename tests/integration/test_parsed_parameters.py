"""Each in-process provider parses a SecretProviderClass's embedded YAML (``objects`` or
``secrets``) once per distinct text, a large one in a worker thread (common.parsed), so a
republish or a rotation neither parses again nor stalls the event loop."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Protocol

from agent.model import MountResult, ProviderRequest
from agent.providers.common.parsed import OFF_LOOP_ABOVE, SHARED
from tests.support.aws import ServiceAccounts, aws_provider, aws_request
from tests.support.azure import WI_CLIENT, AzureWorld
from tests.support.gcp import PROJECT, GcpWorld
from tests.support.jwt_signer import JwtSigner
from tests.support.moto import MotoServer, unique
from tests.support.openbao import OpenBaoServer, build_world


class Mounts(Protocol):
    async def mount(self, request: ProviderRequest) -> MountResult: ...


def padded(request: ProviderRequest, key: str) -> ProviderRequest:
    """``request`` with its ``key`` parameter made unique and larger than OFF_LOOP_ABOVE by
    YAML comments (which every Go YAML decoder skips)."""
    comment = f"# {uuid.uuid4().hex} " + "x" * 100 + "\n"
    text = request.attributes[key].rstrip("\n") + "\n" + comment * (OFF_LOOP_ABOVE // 100)
    assert len(text) > OFF_LOOP_ABOVE
    return dataclasses.replace(request, attributes={**request.attributes, key: text})


async def parsed_once_off_loop(provider: Mounts, request: ProviderRequest) -> dict[str, bytes]:
    parses, off_loop = SHARED.parses, SHARED.parses_off_loop
    first = await provider.mount(request)
    second = await provider.mount(request)
    assert first == second
    assert (SHARED.parses - parses, SHARED.parses_off_loop - off_loop) == (1, 1)
    return {f.path: f.contents for f in first.files}


async def test_vault(openbao: OpenBaoServer, jwt_signer: JwtSigner) -> None:
    from agent.providers.vault import VaultProvider

    world = build_world(openbao, jwt_signer)
    world.admin.kv_put(world.kv2, "team-a/app", {"password": "s3cret"}, version=2)
    path = f"{world.kv2}/data/team-a/app"
    request = world.request(f"- objectName: pw\n  secretPath: {path}\n  secretKey: password\n")
    provider = VaultProvider(default_address=openbao.address, version_key=b"k" * 32, env={})
    try:
        assert await parsed_once_off_loop(provider, padded(request, "objects")) == {"pw": b"s3cret"}
    finally:
        await provider.close()


async def test_aws(moto: MotoServer) -> None:
    name = unique("parsed")
    moto.client("secretsmanager").create_secret(Name=name, SecretString="v")
    accounts = ServiceAccounts()
    accounts.add("default", "web")
    provider = aws_provider(moto.address, accounts)
    request = aws_request(f"- objectName: {name}\n  objectType: secretsmanager\n")
    try:
        assert await parsed_once_off_loop(provider, padded(request, "objects")) == {name: b"v"}
    finally:
        await provider.close()


async def test_azure(azure: AzureWorld) -> None:
    azure.vault.add_secret("db-password", "s3cret")
    provider = azure.provider()
    request = azure.request([{"objectName": "db-password", "objectType": "secret"}])
    request = dataclasses.replace(request, attributes={**request.attributes, "clientID": WI_CLIENT})
    try:
        assert await parsed_once_off_loop(provider, padded(request, "objects")) == {
            "db-password": b"s3cret"
        }
    finally:
        await provider.close()


async def test_gcp(gcp: GcpWorld) -> None:
    gcp.cloud.state.add_secret_version(PROJECT, "db", b"pw")
    gcp.grant(PROJECT, "db")
    request = gcp.request(
        [{"resourceName": f"projects/{PROJECT}/secrets/db/versions/1", "fileName": "pw"}]
    )
    assert await parsed_once_off_loop(gcp.provider(), padded(request, "secrets")) == {"pw": b"pw"}
