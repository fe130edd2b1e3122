"""AzureProvider against the fake Key Vault and Entra over TLS: every object type and
parameter, version history with paging, concurrency and token reuse."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agent.errors import InvalidSecretProviderClass, ProviderError
from agent.model import MountResult
from agent.providers.azure import AzureProvider
from agent.providers.azure.content import CONTENT_TYPE_PFX
from tests.fakes.azure_keyvault import jwk_of
from tests.support.azure import WI_CLIENT, AzureWorld
from tests.support.pki import chain, ec_key, pfx


def files(result: MountResult) -> dict[str, bytes]:
    return {f.path: f.contents for f in result.files}


def modes(result: MountResult) -> dict[str, int]:
    return {f.path: f.mode for f in result.files}


def versions(result: MountResult) -> dict[str, str]:
    return {v.id: v.version for v in result.versions}


@pytest.fixture
async def provider(azure: AzureWorld) -> AsyncIterator[AzureProvider]:
    provider = azure.provider()
    yield provider
    await provider.close()


async def mount(
    azure: AzureWorld,
    provider: AzureProvider,
    objects: list[Any],
    tokens: dict[str, str] | None = None,
    **params: str,
) -> MountResult:
    params.setdefault("clientID", WI_CLIENT)
    return await provider.mount(azure.request(objects, tokens=tokens, extra=params))


async def test_every_object_type_in_one_volume(azure: AzureWorld, provider: AzureProvider) -> None:
    c = chain("shop.example.com")
    secret_version = azure.vault.add_secret("db-password", "s3cret")
    tls_version = azure.vault.add_certificate(
        "shop-tls",
        der=c.leaf.der,
        secret_value=base64.b64encode(
            pfx(c.leaf.key, c.leaf.certificate, [c.root.certificate, c.intermediate.certificate])
        ).decode(),
        content_type=CONTENT_TYPE_PFX,
    )
    signing = ec_key().public_key()
    key_version = azure.vault.add_key("signing", jwk_of(signing))
    result = await mount(
        azure,
        provider,
        [
            {"objectName": "db-password", "objectType": "secret", "filePermission": "0600"},
            {"objectName": "shop-tls", "objectType": "secret", "objectAlias": "tls/bundle.pem"},
            {"objectName": "shop-tls", "objectType": "cert", "objectAlias": "tls/leaf.pem"},
            {"objectName": "signing", "objectType": "key", "objectAlias": "signing.pub"},
        ],
    )
    got = files(result)
    assert got["db-password"] == b"s3cret"
    bundle = got["tls/bundle.pem"]
    assert bundle.startswith(c.leaf.key_pem)
    assert [x.subject.rfc4514_string() for x in x509.load_pem_x509_certificates(bundle)] == [
        "CN=shop.example.com",
        "CN=Test Intermediate CA",
        "CN=Test Root CA",
    ]
    assert got["tls/leaf.pem"] == c.leaf.pem
    assert got["signing.pub"] == signing.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert modes(result) == {
        "db-password": 0o600,
        "tls/bundle.pem": 0o644,
        "tls/leaf.pem": 0o644,
        "signing.pub": 0o644,
    }
    assert versions(result) == {
        "secret/db-password": secret_version,
        "secret/shop-tls": tls_version,
        "cert/shop-tls": tls_version,
        "key/signing": key_version,
    }


async def test_volume_default_mode_and_encodings(
    azure: AzureWorld, provider: AzureProvider
) -> None:
    blob = bytes(range(32))
    azure.vault.add_secret("blob-b64", base64.b64encode(blob).decode())
    azure.vault.add_secret("blob-hex", blob.hex())
    result = await provider.mount(
        azure.request(
            [
                {"objectName": "blob-b64", "objectType": "secret", "objectEncoding": "base64"},
                {"objectName": "blob-hex", "objectType": "secret", "objectEncoding": "hex"},
            ],
            default_mode=0o440,
            clientID=WI_CLIENT,
        )
    )
    assert files(result) == {"blob-b64": blob, "blob-hex": blob}
    assert set(modes(result).values()) == {0o440}


async def test_pfx_format_with_base64_gives_the_binary_pfx(
    azure: AzureWorld, provider: AzureProvider
) -> None:
    c = chain()
    data = pfx(c.leaf.key, c.leaf.certificate, [c.root.certificate])
    azure.vault.add_certificate(
        "tls",
        der=c.leaf.der,
        secret_value=base64.b64encode(data).decode(),
        content_type=CONTENT_TYPE_PFX,
    )
    result = await mount(
        azure,
        provider,
        [
            {
                "objectName": "tls",
                "objectType": "secret",
                "objectFormat": "pfx",
                "objectEncoding": "base64",
                "objectAlias": "tls.pfx",
            },
            {
                "objectName": "tls",
                "objectType": "secret",
                "objectFormat": "pfx",
                "objectAlias": "tls.pfx.b64",
            },
        ],
    )
    assert files(result) == {"tls.pfx": data, "tls.pfx.b64": base64.b64encode(data)}


async def test_a_secret_at_the_25_kb_limit_arrives_whole(
    azure: AzureWorld, provider: AzureProvider
) -> None:
    # Control characters are JSON-escaped six-fold: an answer of about 150 KB, many reads long.
    value = "\x01" * 25000
    azure.vault.add_secret("big", value)
    result = await mount(azure, provider, [{"objectName": "big", "objectType": "secret"}])
    assert files(result) == {"big": value.encode()}


async def test_pinned_version(azure: AzureWorld, provider: AzureProvider) -> None:
    old = azure.vault.add_secret("api-key", "v1")
    azure.vault.add_secret("api-key", "v2")
    result = await mount(
        azure, provider, [{"objectName": "api-key", "objectType": "secret", "objectVersion": old}]
    )
    assert files(result) == {"api-key": b"v1"}
    assert versions(result) == {"secret/api-key": old}
    latest = await mount(
        azure,
        provider,
        [{"objectName": "api-key", "objectType": "secret", "objectVersion": "latest"}],
    )
    assert files(latest) == {"api-key": b"v2"}


async def test_version_history_is_written_newest_first_across_pages(
    azure: AzureWorld, provider: AzureProvider
) -> None:
    azure.keyvault.page_size = 2
    made = [azure.vault.add_secret("api-key", f"v{i}") for i in range(1, 7)]
    azure.vault.disable("secrets", "api-key", made[4])  # v5 is skipped, as upstream skips disabled
    result = await mount(
        azure,
        provider,
        [
            {
                "objectName": "api-key",
                "objectType": "secret",
                "objectAlias": "keys",
                "objectVersionHistory": 3,
            }
        ],
    )
    assert files(result) == {"keys/0": b"v6", "keys/1": b"v4", "keys/2": b"v3"}
    assert versions(result) == {
        "secret/api-key/0": made[5],
        "secret/api-key/1": made[3],
        "secret/api-key/2": made[2],
    }
    assert azure.keyvault.gets("/secrets/api-key/versions") == 3  # six versions, two per page

    pinned = await mount(
        azure,
        provider,
        [
            {
                "objectName": "api-key",
                "objectType": "secret",
                "objectVersion": made[1],
                "objectVersionHistory": 5,
            }
        ],
    )
    assert files(pinned) == {
        "api-key/0": b"v2",
        "api-key/1": b"v1",
    }  # fewer than asked: all there are


async def test_history_of_certificates_and_keys(azure: AzureWorld, provider: AzureProvider) -> None:
    first, second = chain("one.example"), chain("two.example")
    for c in (first, second):
        azure.vault.add_certificate(
            "web", der=c.leaf.der, secret_value="unused", content_type=CONTENT_TYPE_PFX
        )
    result = await mount(
        azure, provider, [{"objectName": "web", "objectType": "cert", "objectVersionHistory": 2}]
    )
    assert files(result) == {"web/0": second.leaf.pem, "web/1": first.leaf.pem}


async def test_history_version_not_listed_names_the_field(
    azure: AzureWorld, provider: AzureProvider
) -> None:
    azure.vault.add_secret("api-key", "v1")
    with pytest.raises(
        InvalidSecretProviderClass,
        match=r"objects\[0\]\.objectVersion: version f{32} is not an enabled version",
    ):
        await mount(
            azure,
            provider,
            [
                {
                    "objectName": "api-key",
                    "objectType": "secret",
                    "objectVersion": "f" * 32,
                    "objectVersionHistory": 2,
                }
            ],
        )


async def test_ten_objects_are_fetched_concurrently_with_one_sign_in(
    azure: AzureWorld, provider: AzureProvider
) -> None:
    for i in range(10):
        azure.vault.add_secret(f"s{i}", f"value-{i}")
    azure.keyvault.barrier = asyncio.Barrier(10)  # all ten must be in flight at once
    result = await mount(
        azure, provider, [{"objectName": f"s{i}", "objectType": "secret"} for i in range(10)]
    )
    assert files(result) == {f"s{i}": f"value-{i}".encode() for i in range(10)}
    assert azure.entra.sign_ins == [("client_assertion", WI_CLIENT)]
    unauthenticated = [path for _, path, auth in azure.keyvault.requests if not auth]
    assert len(unauthenticated) == 1  # the challenge, learned once for the vault


async def test_token_is_reused_until_shortly_before_expiry(azure: AzureWorld) -> None:
    now = [1000.0]
    provider = azure.provider(clock=lambda: now[0])
    azure.vault.add_secret("a", "1")
    objects = [{"objectName": "a", "objectType": "secret"}]
    tokens = {"api://AzureADTokenExchange": azure.pod_token()}  # kubelet reuses a pod token
    try:
        for _ in range(3):
            await mount(azure, provider, objects, tokens=tokens)
        assert len(azure.entra.sign_ins) == 1
        now[0] += 3300  # tokens last 3600 s; refreshed five minutes early
        await mount(azure, provider, objects, tokens=tokens)
        assert len(azure.entra.sign_ins) == 2
        # kubelet refreshed the pod's token: the access token it bought is not reused, and
        # its cache entry is dropped rather than left to age out
        await mount(azure, provider, objects)
        assert len(azure.entra.sign_ins) == 3
        assert len(provider.tokens) == 1
        assert sum(1 for _, _, auth in azure.keyvault.requests if not auth) == 1
    finally:
        await provider.close()


async def test_a_refused_token_is_replaced_once(azure: AzureWorld, provider: AzureProvider) -> None:
    azure.vault.add_secret("a", "1")
    objects = [{"objectName": "a", "objectType": "secret"}]
    tokens = {"api://AzureADTokenExchange": azure.pod_token()}
    await mount(azure, provider, objects, tokens=tokens)
    azure.entra.revoke_all()  # the cached token is no longer accepted: 401 with a challenge
    assert files(await mount(azure, provider, objects, tokens=tokens)) == {"a": b"1"}
    assert len(azure.entra.sign_ins) == 2
    authenticated = [path for _, path, auth in azure.keyvault.requests if auth]
    assert len(authenticated) == 3  # first mount; the refused one; its retry


async def test_separate_certificate_and_key_files_flag(azure: AzureWorld) -> None:
    c = chain()
    data = base64.b64encode(
        pfx(c.leaf.key, c.leaf.certificate, [c.intermediate.certificate, c.root.certificate])
    ).decode()
    azure.vault.add_certificate(
        "tls", der=c.leaf.der, secret_value=data, content_type=CONTENT_TYPE_PFX
    )
    provider = azure.provider(write_cert_and_key_in_separate_files=True, construct_pem_chain=False)
    try:
        result = await mount(azure, provider, [{"objectName": "tls", "objectType": "secret"}])
    finally:
        await provider.close()
    got = files(result)
    assert list(got) == ["tls.crt", "tls.key", "tls"]
    assert got["tls.key"] == c.leaf.key_pem
    assert got["tls.crt"] == c.leaf.pem + c.intermediate.pem + c.root.pem
    assert versions(result) == {"secret/tls": result.versions[0].version}


async def test_zero_objects_are_refused_before_any_request(
    azure: AzureWorld, provider: AzureProvider
) -> None:
    with pytest.raises(InvalidSecretProviderClass, match=r"objects\.array: lists no objects"):
        await mount(azure, provider, [])
    assert azure.keyvault.requests == []


async def test_unknown_object_type_fails_before_any_request(
    azure: AzureWorld, provider: AzureProvider
) -> None:
    azure.vault.add_secret("a", "1")
    with pytest.raises(InvalidSecretProviderClass, match=r"objects\[1\]\.objectType: invalid type"):
        await mount(
            azure,
            provider,
            [
                {"objectName": "a", "objectType": "secret"},
                {"objectName": "a", "objectType": "password"},
            ],
        )
    assert azure.keyvault.requests == [] and azure.entra.sign_ins == []


async def test_alias_escaping_the_volume_fails_before_any_request(
    azure: AzureWorld, provider: AzureProvider
) -> None:
    with pytest.raises(
        InvalidSecretProviderClass,
        match=r"objects\[0\]\.objectAlias: file name must not contain '\.\.'",
    ):
        await mount(
            azure,
            provider,
            [{"objectName": "a", "objectType": "secret", "objectAlias": "../../etc/cron.d/x"}],
        )
    assert azure.keyvault.requests == []


async def test_one_missing_object_fails_the_whole_volume(
    azure: AzureWorld, provider: AzureProvider
) -> None:
    azure.vault.add_secret("present", "1")
    with pytest.raises(ProviderError, match=r"objectName:absent.*SecretNotFound"):
        await mount(
            azure,
            provider,
            [
                {"objectName": "present", "objectType": "secret"},
                {"objectName": "absent", "objectType": "secret"},
            ],
        )
