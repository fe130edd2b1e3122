"""Key Vault failure modes against the fake: 403, 404, disabled versions, 429 with
Retry-After, 5xx, a challenge for another domain, paging to another host, TLS and network
failures. No message carries a secret value, token or client secret."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Mapping, Sequence

import pytest

from agent.errors import ProviderError, ProviderThrottled, ProviderUnavailable
from agent.providers.azure import AzureProvider
from agent.providers.azure.transport import MAX_BODY_BYTES
from tests.support.azure import SP_CLIENT, SP_SECRET, WI_CLIENT, AzureWorld

SECRET_VALUE = "value-that-must-never-be-shown"
OBJECTS = [{"objectName": "db-password", "objectType": "secret"}]


@pytest.fixture
async def provider(azure: AzureWorld) -> AsyncIterator[AzureProvider]:
    azure.vault.add_secret("db-password", SECRET_VALUE)
    provider = azure.provider()
    yield provider
    await provider.close()


async def failure(
    provider: AzureProvider,
    azure: AzureWorld,
    objects: Sequence[Mapping[str, object]] = OBJECTS,
    *,
    tokens: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
    **params: str,
) -> ProviderError:
    params.setdefault("clientID", WI_CLIENT)
    with pytest.raises(ProviderError) as caught:
        await provider.mount(azure.request(objects, tokens=tokens, secrets=secrets, extra=params))
    message = caught.value.message
    assert SECRET_VALUE not in message and SP_SECRET not in message and "fake-aad-" not in message
    return caught.value


async def test_missing_secret_and_version(azure: AzureWorld, provider: AzureProvider) -> None:
    error = await failure(provider, azure, [{"objectName": "nope", "objectType": "secret"}])
    assert error.message.startswith(
        "failed to get objectType:secret, objectName:nope, objectVersion:: "
        "Key Vault 'kv-test' answered 404 SecretNotFound"
    )
    version = "ab" * 16
    error = await failure(
        provider,
        azure,
        [{"objectName": "db-password", "objectType": "secret", "objectVersion": version}],
    )
    assert (
        f"objectVersion:{version}: Key Vault 'kv-test' answered 404 SecretNotFound" in error.message
    )
    error = await failure(provider, azure, [{"objectName": "db-password", "objectType": "key"}])
    assert "404 KeyNotFound" in error.message


async def test_no_access_policy(azure: AzureWorld, provider: AzureProvider) -> None:
    azure.vault.access.clear()
    error = await failure(provider, azure)
    assert "answered 403 Forbidden" in error.message
    assert f"signed in as workload identity (client {WI_CLIENT}" in error.message
    assert "needs the get permission on secrets" in error.message
    history = [{"objectName": "db-password", "objectType": "secret", "objectVersionHistory": 2}]
    assert "needs the get and list permission" in (await failure(provider, azure, history)).message


async def test_get_without_list_for_history(azure: AzureWorld, provider: AzureProvider) -> None:
    azure.vault.allow(WI_CLIENT, permissions=("get",))
    history = [{"objectName": "db-password", "objectType": "secret", "objectVersionHistory": 2}]
    error = await failure(provider, azure, history)
    assert "does not have secrets list permission" in error.message


async def test_disabled_version(azure: AzureWorld, provider: AzureProvider) -> None:
    version = azure.vault.add_secret("db-password", SECRET_VALUE + "2", enabled=False)
    error = await failure(
        provider,
        azure,
        [{"objectName": "db-password", "objectType": "secret", "objectVersion": version}],
    )
    assert (
        "answered 403 Forbidden: Operation get is not allowed on a disabled secret."
        in error.message
    )


async def test_throttling_waits_as_asked_then_succeeds(
    azure: AzureWorld, provider: AzureProvider
) -> None:
    azure.keyvault.fail("/secrets/db-password", 429, times=2, headers={"Retry-After": "3"})
    result = await provider.mount(azure.request(OBJECTS, clientID=WI_CLIENT))
    assert result.files[0].contents == SECRET_VALUE.encode()
    assert azure.sleeps.delays == [3.0, 3.0]


async def test_throttling_that_does_not_end_is_unavailable(
    azure: AzureWorld, provider: AzureProvider
) -> None:
    azure.keyvault.fail("/secrets/db-password", 429, times=10, headers={"Retry-After": "1"})
    error = await failure(provider, azure)
    assert isinstance(error, ProviderThrottled)  # a ProviderUnavailable: kubelet retries
    assert error.retry_after == 1.0
    assert "answered 429 Throttled" in error.message
    assert azure.sleeps.delays == [1.0, 1.0, 1.0]  # four attempts in all


async def test_a_long_retry_after_is_left_to_kubelet(
    azure: AzureWorld, provider: AzureProvider
) -> None:
    azure.keyvault.fail("/secrets/db-password", 429, times=1, headers={"Retry-After": "120"})
    error = await failure(provider, azure)
    assert isinstance(error, ProviderThrottled)
    assert error.retry_after == 120.0  # the rotation scheduler waits at least that long
    assert azure.sleeps.delays == []


async def test_server_errors_are_retried_with_backoff(
    azure: AzureWorld, provider: AzureProvider
) -> None:
    azure.keyvault.fail("/secrets/db-password", 503, times=2, code="ServiceUnavailable")
    await provider.mount(azure.request(OBJECTS, clientID=WI_CLIENT))
    first, second = azure.sleeps.delays
    assert 0.6 <= first <= 1.0 and 1.2 <= second <= 2.0


async def test_unknown_tenant_is_a_configuration_error(
    azure: AzureWorld, provider: AzureProvider
) -> None:
    azure.entra.tenants.clear()
    error = await failure(provider, azure)
    assert "AADSTS90002" in error.message and not isinstance(error, ProviderUnavailable)


async def test_entra_outage_is_retried_then_unavailable(
    azure: AzureWorld, provider: AzureProvider
) -> None:
    azure.entra.unavailable = 2
    await provider.mount(azure.request(OBJECTS, clientID=WI_CLIENT))
    assert len(azure.sleeps.delays) == 2
    azure.entra.unavailable = 10
    error = await failure(provider, azure, tokens={"api://AzureADTokenExchange": azure.pod_token()})
    assert isinstance(error, ProviderUnavailable)
    assert (
        "Entra ID refused the workload identity" in error.message
        and "temporarily_unavailable" in error.message
    )


async def test_challenge_for_another_resource_gets_no_token(
    azure: AzureWorld, provider: AzureProvider
) -> None:
    azure.keyvault.resource = "https://management.localhost"
    error = await failure(provider, azure)
    assert (
        "challenge resource 'management.localhost' does not match the vault's domain"
        in error.message
    )
    assert azure.entra.sign_ins == []
    assert all(not auth for _, _, auth in azure.keyvault.requests)


async def test_paging_to_another_host_is_refused(
    azure: AzureWorld, provider: AzureProvider
) -> None:
    azure.keyvault.page_size = 1
    azure.vault.add_secret("db-password", "v2")
    azure.keyvault.next_link_host = "attacker.localhost"
    history = [{"objectName": "db-password", "objectType": "secret", "objectVersionHistory": 2}]
    error = await failure(provider, azure, history)
    assert "sent a nextLink to another host" in error.message


async def test_untrusted_certificate(azure: AzureWorld) -> None:
    env = dict(azure.env)
    del env["SSL_CERT_FILE"]  # the system store does not know the test CA
    provider = azure.provider(env=env)
    try:
        error = await failure(provider, azure)
    finally:
        await provider.close()
    assert error.message.startswith("TLS error talking to Key Vault 'kv-test'")
    assert not isinstance(error, ProviderUnavailable)


async def test_unreachable_vault_is_unavailable(azure: AzureWorld, tmp_path: object) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cloud = json.loads(azure.env_file.read_text())
    cloud["keyVaultDNSSuffix"] = f"vault.localhost:{port}"
    azure.env_file.write_text(json.dumps(cloud))
    provider = azure.provider()
    try:
        error = await failure(provider, azure)
    finally:
        await provider.close()
    assert isinstance(error, ProviderUnavailable)
    assert error.message.startswith("cannot reach Key Vault 'kv-test': ClientConnectorError")
    assert len(azure.sleeps.delays) == 3


async def test_deadline(azure: AzureWorld) -> None:
    import asyncio

    azure.keyvault.hang = asyncio.Event()
    provider = azure.provider(timeout=0.3)
    try:
        error = await failure(provider, azure)
    finally:
        azure.keyvault.hang.set()
        await provider.close()
    assert isinstance(error, ProviderUnavailable)
    assert error.message == "Key Vault 'kv-test' did not answer within 0.3s"


async def test_service_principal_errors_never_show_the_secret(
    azure: AzureWorld, provider: AzureProvider
) -> None:
    azure.vault.access.clear()
    error = await failure(
        provider,
        azure,
        secrets={"clientid": SP_CLIENT, "clientsecret": SP_SECRET},
        tokens={},
        clientID="",
    )
    assert f"service principal (client {SP_CLIENT}" in error.message


async def test_an_answer_arriving_in_pieces_is_read_whole(
    azure: AzureWorld, provider: AzureProvider
) -> None:
    # A slow link or a large certificate chain: the body reaches the agent in several TCP
    # segments. Reading only what the first one brought left truncated JSON.
    value = "".join(f"{i:05d}" for i in range(2000))
    azure.vault.add_secret("large", value)
    azure.keyvault.trickle = 512
    objects = [{"objectName": "large", "objectType": "secret"}]
    result = await provider.mount(azure.request(objects, clientID=WI_CLIENT))
    assert result.files[0].contents == value.encode()


async def test_an_oversized_answer_is_refused(azure: AzureWorld, provider: AzureProvider) -> None:
    azure.vault.add_secret("huge", "x" * (MAX_BODY_BYTES + 1))
    error = await failure(provider, azure, [{"objectName": "huge", "objectType": "secret"}])
    expected = f"/secrets/huge is larger than {MAX_BODY_BYTES} bytes"
    assert error.message.endswith(expected)


@pytest.mark.parametrize("body", [b"<html>Gateway</html>", b"[]", b"", b'{"value": "trunc'])
async def test_an_answer_that_is_not_a_json_object_says_so(
    azure: AzureWorld, provider: AzureProvider, body: bytes
) -> None:
    azure.keyvault.fail("/secrets/db-password", 200, times=2, body=body)
    error = await failure(provider, azure)
    assert error.message == (
        "failed to get objectType:secret, objectName:db-password, objectVersion:: "
        "Key Vault 'kv-test' answered 200 with a body that is not a JSON object"
    )
