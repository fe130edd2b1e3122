"""Azure identities against the fake Entra and IMDS: workload identity (the assertion checked
for signature, issuer, subject and audience), service principal, managed identity, the
service-account annotation, and the refusals."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import pytest

from agent.errors import InvalidSecretProviderClass, ProviderError, ServiceAccountNotFound
from agent.providers.azure import AzureProvider
from tests.fakes.azure_entra import ASSERTION_TYPE, EXCHANGE_AUDIENCE
from tests.support.azure import (
    MI_CLIENT,
    MI_SYSTEM,
    NAMESPACE,
    SERVICE_ACCOUNT,
    SP_CLIENT,
    SP_SECRET,
    WI_CLIENT,
    AzureWorld,
)
from tests.support.jwt_signer import JwtSigner

OBJECTS = [{"objectName": "db-password", "objectType": "secret"}]


class ServiceAccounts:
    """A ServiceAccountSource over a dict (the standalone and Kubernetes ones are tested with
    their adapters)."""

    def __init__(self, annotations: Mapping[tuple[str, str], Mapping[str, str]]) -> None:
        self._annotations = annotations
        self.lookups = 0

    async def annotations(self, namespace: str, name: str) -> Mapping[str, str]:
        self.lookups += 1
        found = self._annotations.get((namespace, name))
        if found is None:
            raise ServiceAccountNotFound(f"serviceaccount {namespace}/{name} not found")
        return found


@pytest.fixture
async def provider(azure: AzureWorld) -> AsyncIterator[AzureProvider]:
    azure.vault.add_secret("db-password", "s3cret")
    provider = azure.provider()
    yield provider
    await provider.close()


async def error_of(
    provider: AzureProvider,
    azure: AzureWorld,
    *,
    tokens: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
    **params: str,
) -> str:
    with pytest.raises(ProviderError) as caught:
        await provider.mount(azure.request(OBJECTS, tokens=tokens, secrets=secrets, extra=params))
    return caught.value.message


async def test_workload_identity_sends_the_pod_token_as_client_assertion(
    azure: AzureWorld, provider: AzureProvider
) -> None:
    pod_token = azure.pod_token()
    result = await provider.mount(
        azure.request(OBJECTS, tokens={EXCHANGE_AUDIENCE: pod_token}, clientID=WI_CLIENT)
    )
    assert result.files[0].contents == b"s3cret"
    form = azure.entra.last_form
    assert form["client_assertion"] == pod_token
    assert form["client_assertion_type"] == ASSERTION_TYPE
    assert form["client_id"] == WI_CLIENT
    assert form["scope"] == "https://vault.localhost/.default"  # from the vault's challenge
    assert "client_secret" not in form


@pytest.mark.parametrize(
    ("claims", "code"),
    [
        (
            {"audience": "api://SomethingElse", "extra": {"aud": ["api://SomethingElse"]}},
            "AADSTS700212",
        ),
        ({"service_account": "other"}, "AADSTS700213"),
        ({"ttl": -60}, "AADSTS700024"),
    ],
)
async def test_workload_identity_assertion_checked_by_entra(
    azure: AzureWorld, provider: AzureProvider, claims: dict[str, object], code: str
) -> None:
    token = azure.pod_token(**claims)  # type: ignore[arg-type]
    message = await error_of(provider, azure, tokens={EXCHANGE_AUDIENCE: token}, clientID=WI_CLIENT)
    assert f"Entra ID refused the workload identity (client {WI_CLIENT}" in message
    assert code in message
    assert token not in message


async def test_assertion_from_an_untrusted_issuer(
    azure: AzureWorld, provider: AzureProvider
) -> None:
    forger = JwtSigner(issuer="https://evil.example")
    token = forger.sign(
        namespace=NAMESPACE, service_account=SERVICE_ACCOUNT, audience=EXCHANGE_AUDIENCE
    )
    assert "AADSTS700211" in await error_of(
        provider, azure, tokens={EXCHANGE_AUDIENCE: token}, clientID=WI_CLIENT
    )
    # Right issuer name, wrong key: the signature fails.
    impostor = JwtSigner(issuer=azure.signer.issuer)
    token = impostor.sign(
        namespace=NAMESPACE, service_account=SERVICE_ACCOUNT, audience=EXCHANGE_AUDIENCE
    )
    assert "AADSTS5002738" in await error_of(
        provider, azure, tokens={EXCHANGE_AUDIENCE: token}, clientID=WI_CLIENT
    )


async def test_workload_identity_without_the_token_names_the_audience(
    azure: AzureWorld, provider: AzureProvider
) -> None:
    message = await error_of(provider, azure, tokens={"vault": "x"}, clientID=WI_CLIENT)
    assert "clientID selects workload identity" in message
    assert "api://AzureADTokenExchange" in message and "tokens present for: vault" in message
    assert azure.keyvault.requests == []


async def test_service_principal_from_the_node_publish_secret(
    azure: AzureWorld, provider: AzureProvider
) -> None:
    secrets = {"ClientID": SP_CLIENT, "CLIENTSECRET": SP_SECRET}  # keys in any case
    result = await provider.mount(azure.request(OBJECTS, secrets=secrets, tokens={}))
    assert result.files[0].contents == b"s3cret"
    assert azure.entra.sign_ins == [("client_secret", SP_CLIENT)]
    assert azure.entra.last_form["client_secret"] == SP_SECRET


async def test_wrong_client_secret_is_reported_without_it(
    azure: AzureWorld, provider: AzureProvider
) -> None:
    wrong = "not-the-secret-0123456789"
    message = await error_of(
        provider, azure, secrets={"clientid": SP_CLIENT, "clientsecret": wrong}, tokens={}
    )
    assert f"service principal (client {SP_CLIENT}" in message and "AADSTS7000215" in message
    assert wrong not in message


async def test_half_a_service_principal_names_what_is_missing(
    azure: AzureWorld, provider: AzureProvider
) -> None:
    message = await error_of(provider, azure, secrets={"clientid": SP_CLIENT}, tokens={})
    assert message == "could not find clientsecret in the nodePublishSecretRef secret"


async def test_client_id_wins_over_node_publish_secret(
    azure: AzureWorld, provider: AzureProvider
) -> None:
    await provider.mount(
        azure.request(
            OBJECTS, secrets={"clientid": SP_CLIENT, "clientsecret": SP_SECRET}, clientID=WI_CLIENT
        )
    )
    assert azure.entra.sign_ins == [("client_assertion", WI_CLIENT)]


@pytest.mark.parametrize(("user_assigned", "principal"), [("", MI_SYSTEM), (MI_CLIENT, MI_CLIENT)])
async def test_managed_identity_through_imds(
    azure: AzureWorld, provider: AzureProvider, user_assigned: str, principal: str
) -> None:
    result = await provider.mount(
        azure.request(
            OBJECTS, tokens={}, useVMManagedIdentity="true", userAssignedIdentityID=user_assigned
        )
    )
    assert result.files[0].contents == b"s3cret"
    assert azure.entra.sign_ins == [("imds", principal)]


async def test_unknown_user_assigned_identity(azure: AzureWorld, provider: AzureProvider) -> None:
    message = await error_of(
        provider,
        azure,
        tokens={},
        useVMManagedIdentity="true",
        userAssignedIdentityID="0000-unknown",
    )
    assert (
        message == "IMDS refused a token for the managed identity (user-assigned 0000-unknown): "
        "invalid_request: Identity not found"
    )


async def test_client_id_from_the_service_account_annotation(azure: AzureWorld) -> None:
    accounts = ServiceAccounts(
        {(NAMESPACE, SERVICE_ACCOUNT): {"azure.workload.identity/client-id": WI_CLIENT}}
    )
    azure.vault.add_secret("db-password", "s3cret")
    provider = azure.provider(service_accounts=accounts)
    try:
        result = await provider.mount(azure.request(OBJECTS))
        assert result.files[0].contents == b"s3cret"
        assert azure.entra.sign_ins == [("client_assertion", WI_CLIENT)]
        # An SPC's own clientID needs no lookup.
        await provider.mount(azure.request(OBJECTS, clientID=WI_CLIENT))
        assert accounts.lookups == 1
    finally:
        await provider.close()


async def test_no_identity_at_all(azure: AzureWorld) -> None:
    provider = azure.provider(service_accounts=ServiceAccounts({(NAMESPACE, SERVICE_ACCOUNT): {}}))
    try:
        with pytest.raises(InvalidSecretProviderClass) as caught:
            await provider.mount(azure.request(OBJECTS))
        assert "no Azure identity configured: set clientID" in caught.value.message
        assert "no azure.workload.identity/client-id annotation" in caught.value.message
        missing = azure.provider(service_accounts=ServiceAccounts({}))
        with pytest.raises(ServiceAccountNotFound):
            await missing.mount(azure.request(OBJECTS))
        await missing.close()
    finally:
        await provider.close()


async def test_pod_identity_is_refused_before_any_request(
    azure: AzureWorld, provider: AzureProvider
) -> None:
    with pytest.raises(
        InvalidSecretProviderClass, match="usePodIdentity: aad-pod-identity is retired"
    ):
        await provider.mount(azure.request(OBJECTS, usePodIdentity="true"))
    assert azure.keyvault.requests == [] and azure.entra.sign_ins == []


async def test_each_identity_gets_its_own_token(azure: AzureWorld, provider: AzureProvider) -> None:
    sp = {"clientid": SP_CLIENT, "clientsecret": SP_SECRET}
    for _ in range(2):
        await provider.mount(azure.request(OBJECTS, secrets=sp, tokens={}))
        await provider.mount(azure.request(OBJECTS, tokens={}, useVMManagedIdentity="true"))
    assert sorted(azure.entra.sign_ins) == [("client_secret", SP_CLIENT), ("imds", MI_SYSTEM)]
    assert len(provider.tokens) == 2


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        # Sent as "Authorization: Bearer <token>": a line break would split the header.
        ({"access_token": "eyJ0.eyJ1\r\nX-Injected: 1"}, "access_token is not a bearer token"),
        ({"access_token": "two words"}, "access_token is not a bearer token"),
        ({"access_token": ""}, "the answer has no access_token"),
        ({"expires_in": float("inf")}, "expires_in is not a number of seconds"),
        ({"expires_in": float("nan")}, "expires_in is not a number of seconds"),
        ({"expires_in": -60}, "expires_in is not a number of seconds"),
        ({"expires_in": "3600s"}, "expires_in is not a number of seconds"),
    ],
)
async def test_a_token_answer_that_cannot_be_used_is_refused(
    azure: AzureWorld, provider: AzureProvider, fields: dict[str, object], expected: str
) -> None:
    azure.entra.answer_fields = fields
    message = await error_of(provider, azure, clientID=WI_CLIENT)
    assert message.startswith(f"Entra ID refused the workload identity (client {WI_CLIENT}")
    assert message.endswith(expected)


async def test_a_token_claiming_to_last_for_ages_is_kept_a_day_at_most(azure: AzureWorld) -> None:
    now = [1000.0]
    provider = azure.provider(clock=lambda: now[0])
    azure.vault.add_secret("db-password", "s3cret")
    tokens = {EXCHANGE_AUDIENCE: azure.pod_token()}
    azure.entra.answer_fields = {"expires_in": 10**400}  # an int no float can hold
    try:
        await provider.mount(azure.request(OBJECTS, tokens=tokens, clientID=WI_CLIENT))
        now[0] += 86400  # a day later: signed in again, not served from the cache
        await provider.mount(azure.request(OBJECTS, tokens=tokens, clientID=WI_CLIENT))
    finally:
        await provider.close()
    assert len(azure.entra.sign_ins) == 2
