"""Pieces of the Azure provider's HTTP: the Key Vault challenge, Retry-After, the token cache
lifetime, and RFC 6761 names."""

from __future__ import annotations

import socket

import pytest

from agent.errors import ProviderError
from agent.providers.azure.challenge import parse_bearer, scope_for
from agent.providers.azure.keyvault import version_of
from agent.providers.azure.tokens import usable_for
from agent.providers.azure.transport import LocalhostResolver, retry_after

VAULT = "https://kv1.vault.azure.net/"


def test_key_vault_challenge() -> None:
    header = 'Bearer authorization="https://login.microsoftonline.com/72f9", resource="https://vault.azure.net"'
    assert parse_bearer(header) == {
        "authorization": "https://login.microsoftonline.com/72f9",
        "resource": "https://vault.azure.net",
    }
    assert scope_for(VAULT, header, "Key Vault") == "https://vault.azure.net/.default"
    scoped = 'Bearer authorization_uri="https://login/x", scope="https://vault.azure.net/.default"'
    assert scope_for(VAULT, scoped, "Key Vault") == "https://vault.azure.net/.default"
    assert (
        scope_for(
            "https://kv1.vault.localhost:8443/",
            'Bearer resource="https://vault.localhost:8443"',
            "kv",
        )
        == "https://vault.localhost:8443/.default"
    )


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("", "without a usable Bearer challenge"),
        ('Basic realm="x"', "without a usable Bearer challenge"),
        ('Bearer authorization="https://login/x"', "without a usable Bearer challenge"),
        # A server posing as the vault asks for a token for another service: refused.
        ('Bearer resource="https://management.azure.com"', "does not match the vault's domain"),
        ('Bearer resource="https://azure.net.evil.example"', "does not match the vault's domain"),
        ('Bearer resource="https://kv1.vault.azure.net"', "does not match the vault's domain"),
    ],
)
def test_challenge_for_another_domain_is_refused(header: str, expected: str) -> None:
    with pytest.raises(ProviderError, match=expected):
        scope_for(VAULT, header, "Key Vault 'kv1'")


def test_retry_after_forms() -> None:
    assert retry_after({"retry-after": "7"}, 0) == 7.0
    assert retry_after({"retry-after-ms": "250", "retry-after": "7"}, 0) == 0.25
    assert retry_after({"x-ms-retry-after-ms": "1500"}, 0) == 1.5
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 1445412470.0) == 10.0
    assert retry_after({"retry-after": "soon"}, 0) is None
    assert retry_after({}, 0) is None


def test_token_lifetime_in_the_cache() -> None:
    assert usable_for(3600) == 3300  # five minutes early, as the Azure SDKs
    assert usable_for(60) == 45  # short tokens: a quarter early
    assert usable_for(86400, refresh_in=43200) == 43200  # Entra's refresh_in wins
    assert usable_for(0) == 0


def test_version_of_object_ids() -> None:
    assert version_of("https://kv.vault.azure.net/secrets/db/0123abcd") == "0123abcd"
    assert version_of("https://kv.vault.azure.net/secrets/db") == ""
    assert version_of(None) == ""


async def test_localhost_names_resolve_to_loopback_without_dns() -> None:
    resolver = LocalhostResolver()
    try:
        found = await resolver.resolve("kv1.vault.localhost", 443, socket.AF_UNSPEC)
        assert [r["host"] for r in found] == ["127.0.0.1", "::1"]
        assert [r["host"] for r in await resolver.resolve("LOCALHOST.", 80)] == ["127.0.0.1"]
        assert [r["host"] for r in await resolver.resolve("127.0.0.1", 80)] == ["127.0.0.1"]
    finally:
        await resolver.close()
