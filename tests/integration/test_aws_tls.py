"""AWS_CA_BUNDLE: a moto server behind TLS with a certificate from a CA of the test's own."""

from __future__ import annotations

import pytest

from agent.errors import ProviderError, ProviderUnavailable
from tests.support.aws import ServiceAccounts, aws_provider, aws_request
from tests.support.moto import MotoServer, unique


@pytest.fixture
def accounts() -> ServiceAccounts:
    accounts = ServiceAccounts()
    accounts.add("default", "web")
    return accounts


async def test_the_ca_bundle_is_trusted(moto_tls: MotoServer, accounts: ServiceAccounts) -> None:
    name = unique("tls")
    moto_tls.client("secretsmanager").create_secret(Name=name, SecretString="over tls")
    provider = aws_provider(moto_tls.address, accounts, AWS_CA_BUNDLE=moto_tls.ca_cert)
    try:
        result = await provider.mount(
            aws_request(f"- {{objectName: {name}, objectType: secretsmanager}}")
        )
    finally:
        await provider.close()
    assert result.files[0].contents == b"over tls"


async def test_an_untrusted_certificate_is_a_configuration_error(
    moto_tls: MotoServer, accounts: ServiceAccounts
) -> None:
    provider = aws_provider(moto_tls.address, accounts)  # the system's CAs only
    try:
        with pytest.raises(ProviderError) as info:
            await provider.mount(aws_request("- {objectName: x, objectType: secretsmanager}"))
    finally:
        await provider.close()
    assert not isinstance(info.value, ProviderUnavailable)  # retrying cannot fix a certificate
    assert "TLSError" in info.value.message
