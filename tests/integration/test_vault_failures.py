"""VaultProvider failures against a real OpenBao dev server.

Every error must say what is wrong (path, role, audience, object) and must never carry the
pod's JWT or the Vault token, neither in the message nor in any log line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, MutableMapping
from typing import Any

import pytest
from structlog.testing import capture_logs

from agent.errors import AgentError, ProviderError, ProviderThrottled, ProviderUnavailable
from agent.providers.vault import VaultProvider
from tests.support.jwt_signer import JwtSigner
from tests.support.openbao import (
    OpenBaoServer,
    RequestCounter,
    VaultWorld,
    build_world,
    free_port,
    unique,
)


@pytest.fixture(scope="module")
def world(openbao: OpenBaoServer, jwt_signer: JwtSigner) -> VaultWorld:
    world = build_world(openbao, jwt_signer)
    world.admin.kv_put(world.kv2, "team-a/app", {"password": "s3cret"}, version=2)
    world.admin.kv_put(world.kv2, "other/app", {"password": "not-yours"}, version=2)
    return world


@pytest.fixture
def provider(counted: tuple[VaultProvider, RequestCounter]) -> VaultProvider:
    return counted[0]


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[list[MutableMapping[str, Any]]]:
    caplog.set_level(logging.DEBUG)
    with capture_logs() as entries:
        yield entries


def cached_token(provider: VaultProvider) -> str:
    """White-box: the Vault token the provider holds, to prove it never leaks."""
    tokens = provider._client._tokens
    entries = list(tokens._entries.values())
    assert len(entries) == 1
    return entries[0].value


def assert_clean(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text


async def failure(provider: VaultProvider, world: VaultWorld, *args: Any, **kw: Any) -> AgentError:
    with pytest.raises(AgentError) as info:
        await provider.mount(world.request(*args, **kw))
    return info.value


def obj(world: VaultWorld, path: str, key: str = "password", name: str = "f") -> dict[str, str]:
    return {"objectName": name, "secretPath": f"{world.kv2}/data/{path}", "secretKey": key}


async def test_permission_denied_names_path_and_role_only(
    world: VaultWorld,
    provider: VaultProvider,
    caplog: pytest.LogCaptureFixture,
    logs: list[MutableMapping[str, Any]],
) -> None:
    jwt = world.jwt()
    # First mount a readable path, so a token is cached and the 403 path re-logs in once.
    await provider.mount(world.request([obj(world, "team-a/app")], tokens={"vault": jwt}))
    token = cached_token(provider)
    error = await failure(provider, world, [obj(world, "other/app")], tokens={"vault": jwt})
    assert type(error) is ProviderError
    assert error.message == (
        f"permission denied reading {world.kv2}/data/other/app with role 'app'"
    )
    relogin_token = cached_token(provider)
    assert relogin_token != token
    assert_clean(error.message, jwt, token, relogin_token, "not-yours")
    assert {"vault.login", "vault.token.retry"} <= {entry["event"] for entry in logs}
    assert_clean(caplog.text + repr(logs), jwt, token, relogin_token, "not-yours", "s3cret")


async def test_missing_path_names_path_and_role_only(
    world: VaultWorld, provider: VaultProvider
) -> None:
    jwt = world.jwt()
    error = await failure(provider, world, [obj(world, "team-a/nope")], tokens={"vault": jwt})
    assert type(error) is ProviderError
    assert error.message == f"secret not found at {world.kv2}/data/team-a/nope with role 'app'"
    assert_clean(error.message, jwt, cached_token(provider))


async def test_missing_key_names_object_and_key(world: VaultWorld, provider: VaultProvider) -> None:
    error = await failure(provider, world, [obj(world, "team-a/app", key="nokey", name="db")])
    assert "object 'db'" in error.message
    assert "key 'nokey'" in error.message
    assert "s3cret" not in error.message


async def test_missing_audience_token_says_what_to_configure(
    world: VaultWorld, counted: tuple[VaultProvider, RequestCounter]
) -> None:
    provider, counter = counted
    error = await failure(
        provider, world, [obj(world, "team-a/app")], tokens={"other": world.jwt("other")}
    )
    assert type(error) is ProviderError
    assert "audience 'vault'" in error.message
    assert "tokenRequests" in error.message
    assert "other" in error.message  # what kubelet did send
    assert counter.calls == []


async def test_custom_audience_is_used(world: VaultWorld, provider: VaultProvider) -> None:
    error = await failure(
        provider, world, [obj(world, "team-a/app")], tokens={"vault": world.jwt()}, audience="sts"
    )
    assert "audience 'sts'" in error.message


async def test_wrong_role(world: VaultWorld, provider: VaultProvider) -> None:
    jwt = world.jwt()
    error = await failure(
        provider, world, [obj(world, "team-a/app")], tokens={"vault": jwt}, roleName="nobody"
    )
    assert type(error) is ProviderError
    assert "role 'nobody'" in error.message
    assert f"auth/{world.jwt_mount}" in error.message
    assert_clean(error.message, jwt)


async def test_token_for_wrong_audience_is_rejected_by_vault(
    world: VaultWorld, provider: VaultProvider
) -> None:
    jwt = world.jwt("somebody-else")
    error = await failure(provider, world, [obj(world, "team-a/app")], tokens={"vault": jwt})
    assert type(error) is ProviderError
    assert "login" in error.message
    assert_clean(error.message, jwt)


async def test_unreachable_address(world: VaultWorld, provider: VaultProvider) -> None:
    address = f"http://127.0.0.1:{free_port()}"
    error = await failure(provider, world, [obj(world, "team-a/app")], vaultAddress=address)
    assert isinstance(error, ProviderUnavailable)
    assert address in error.message


async def test_all_or_nothing(
    world: VaultWorld, counted: tuple[VaultProvider, RequestCounter]
) -> None:
    provider, counter = counted
    objects = [obj(world, "team-a/app", name="good"), obj(world, "team-a/missing", name="bad")]
    error = await failure(provider, world, objects)
    assert "team-a/missing" in error.message
    assert counter.reads(f"/v1/{world.kv2}/data/team-a/app") <= 1


async def test_revoked_token_is_replaced_once(
    world: VaultWorld, counted: tuple[VaultProvider, RequestCounter]
) -> None:
    provider, counter = counted
    request = world.request([obj(world, "team-a/app")])
    await provider.mount(request)
    world.admin.call("PUT", f"sys/leases/revoke-prefix/auth/{world.jwt_mount}")
    result = await provider.mount(request)
    assert result.files[0].contents == b"s3cret"
    assert counter.logins == 2


async def test_invalid_spc_is_reported_before_any_request(
    world: VaultWorld, counted: tuple[VaultProvider, RequestCounter]
) -> None:
    provider, counter = counted
    error = await failure(provider, world, "- {objectName: a}")
    assert error.message == "objects[0].secretPath: is required"
    assert counter.calls == []


async def test_an_answer_above_twice_the_payload_limit_is_not_read(
    world: VaultWorld, openbao: OpenBaoServer
) -> None:
    """Vault answers are read up to twice --max-payload-size (transport.response_limit), not
    whole: here a 64 KiB limit, a 200 KiB secret, and an error that says which limit."""
    world.admin.kv_put(world.kv2, "team-a/big", {"blob": "x" * 200_000}, version=2)
    provider = VaultProvider(
        "vault",
        default_address=openbao.address,
        version_key=b"k" * 32,
        timeout=10,
        max_payload_bytes=64 * 1024,
    )
    try:
        error = await failure(provider, world, [obj(world, "team-a/big", key="blob")])
        assert type(error) is ProviderError
        assert error.message == (
            f"Vault at {openbao.address} answered GET /v1/{world.kv2}/data/team-a/big with more "
            "than 131072 bytes (twice --max-payload-size): more than a volume can hold"
        )
        # Below the cap the same secret is served as before.
        small = [obj(world, "team-a/app")]
        assert (await provider.mount(world.request(small))).files[0].contents == b"s3cret"
    finally:
        await provider.close()


async def test_a_rate_limit_quota_throttles_with_its_retry_after(
    openbao: OpenBaoServer, jwt_signer: JwtSigner, provider: VaultProvider
) -> None:
    # A world of its own: the quota limits every request to its KV mount.
    world = build_world(openbao, jwt_signer)
    world.admin.kv_put(world.kv2, "team-a/app", {"password": "s3cret"}, version=2)
    world.admin.call("POST", "sys/quotas/config", {"enable_rate_limit_response_headers": True})
    quota = f"sys/quotas/rate-limit/{unique('rl')}"
    world.admin.call("POST", quota, {"path": f"{world.kv2}/", "rate": 1, "interval": "60s"})
    try:
        await provider.mount(world.request([obj(world, "team-a/app")]))
        error = await failure(provider, world, [obj(world, "team-a/app")])
    finally:
        world.admin.call("DELETE", quota)
    # Throttled, with OpenBao's Retry-After: the rotation scheduler backs off Vault for it.
    assert isinstance(error, ProviderThrottled)
    assert isinstance(error, ProviderUnavailable)  # kubelet still sees UNAVAILABLE
    assert error.retry_after is not None
    assert 0 < error.retry_after <= 60
    assert "HTTP 429" in error.message
    assert "rate limit quota exceeded" in error.message
    assert "s3cret" not in error.message
