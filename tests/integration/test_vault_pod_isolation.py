"""Vault tokens belong to one pod and one service account JWT, against a real OpenBao server.

The role here is bound to one pod by name (jwt auth ``bound_claims``), as operators do to give
a single pod of a shared service account access. Every other pod must be refused by Vault
itself, even right after the allowed pod logged in and its Vault token sits in the cache.
"""

from __future__ import annotations

import hashlib

import pytest

from agent.errors import ProviderError, ProviderUnavailable
from agent.providers.vault import VaultProvider
from tests.support.jwt_signer import JwtSigner
from tests.support.openbao import (
    OpenBaoServer,
    RequestCounter,
    VaultWorld,
    build_world,
    unique,
)

ROLE = "web-0-only"


@pytest.fixture(scope="module")
def world(openbao: OpenBaoServer, jwt_signer: JwtSigner) -> VaultWorld:
    world = build_world(openbao, jwt_signer)
    world.admin.kv_put(world.kv2, "team-a/web", {"password": "for-web-0"}, version=2)
    policy = world.admin.write_policy(unique("web"), {f"{world.kv2}/data/team-a/*": ["read"]})
    world.admin.write_jwt_role(
        world.jwt_mount,
        ROLE,
        audience="vault",
        namespace=world.namespace,
        service_account=world.service_account,
        policies=[policy],
        bound_claims={"/kubernetes.io/pod/name": "web-0"},
    )
    return world


def objects(world: VaultWorld) -> list[dict[str, str]]:
    path = f"{world.kv2}/data/team-a/web"
    return [{"objectName": "password", "secretPath": path, "secretKey": "password"}]


def cached_tokens(provider: VaultProvider) -> list[str]:
    """White-box: the Vault tokens the provider holds, to prove none leaks into an error."""
    return [entry.value for entry in provider._client._tokens._entries.values()]


async def refused(provider: VaultProvider, world: VaultWorld, pod: str, jwt: str) -> ProviderError:
    request = world.request(objects(world), pod_name=pod, tokens={"vault": jwt}, roleName=ROLE)
    with pytest.raises(ProviderError) as info:
        await provider.mount(request)
    assert not isinstance(info.value, ProviderUnavailable)
    return info.value


async def test_token_of_one_pod_is_never_used_for_another(
    world: VaultWorld, counted: tuple[VaultProvider, RequestCounter]
) -> None:
    provider, counter = counted
    allowed = world.request(objects(world), pod_name="web-0", roleName=ROLE)
    result = await provider.mount(allowed)
    assert result.files[0].contents == b"for-web-0"
    [token] = cached_tokens(provider)

    jwt = world.jwt(pod_name="web-1", pod_uid=world.pod_uid("web-1"))
    error = await refused(provider, world, "web-1", jwt)
    # Vault, not the cache, decided: web-1 logged in and its claims were refused.
    assert counter.logins == 2
    assert error.message.startswith(f"Vault login at {world.server.address} ")
    assert f"role '{ROLE}'" in error.message
    assert "bound claim" in error.message
    for secret in (jwt, token, allowed.identity.tokens["vault"].token, "for-web-0"):
        assert secret not in error.message
    assert cached_tokens(provider) == [token]  # web-0 keeps its own


async def test_cache_key_holds_the_pod_uid_and_a_digest_of_the_jwt(
    world: VaultWorld, counted: tuple[VaultProvider, RequestCounter]
) -> None:
    provider, _ = counted
    request = world.request(objects(world), pod_name="web-0", roleName=ROLE)
    await provider.mount(request)
    jwt = request.identity.tokens["vault"].token
    [key] = provider._client._tokens._entries
    assert key.pod_uid == request.identity.uid
    assert key.jwt_sha256 == hashlib.sha256(jwt.encode()).hexdigest()
    assert jwt not in repr(key)


async def test_token_is_never_used_for_another_jwt_of_the_same_pod_uid(
    world: VaultWorld, counted: tuple[VaultProvider, RequestCounter]
) -> None:
    """The pod UID comes from the request; only the JWT is verified by Vault. A token is
    handed out only with the very JWT it was bought with."""
    provider, counter = counted
    uid = world.pod_uid("web-0")
    await provider.mount(world.request(objects(world), pod_name="web-0", roleName=ROLE))
    other = world.jwt(pod_name="web-1", pod_uid=uid)
    error = await refused(provider, world, "web-0", other)
    assert counter.logins == 2
    assert "bound claim" in error.message
    assert other not in error.message
