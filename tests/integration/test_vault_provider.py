"""VaultProvider against a real OpenBao dev server: content, modes, versions and caching."""

from __future__ import annotations

import base64
import dataclasses
import json

import pytest

from agent.model import MountResult
from agent.providers.vault import VaultProvider
from tests.support.jwt_signer import JwtSigner
from tests.support.openbao import (
    OpenBaoServer,
    RequestCounter,
    VaultWorld,
    build_world,
    unique,
)

CERT = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


@pytest.fixture(scope="module")
def world(openbao: OpenBaoServer, jwt_signer: JwtSigner) -> VaultWorld:
    world = build_world(openbao, jwt_signer)
    world.admin.kv_put(
        world.kv2,
        "team-a/app",
        {
            "username": "alice",
            "password": "s3cret",
            "cert_b64": base64.b64encode(CERT).decode(),
            "cert_hex": CERT.hex(),
            "limits": {"cpu": 2},
        },
        version=2,
    )
    world.admin.kv_put(world.kv1, "team-a/legacy", {"api_key": "k1"}, version=1)
    return world


@pytest.fixture
def provider(counted: tuple[VaultProvider, RequestCounter]) -> VaultProvider:
    return counted[0]


def files(result: MountResult) -> dict[str, bytes]:
    return {f.path: f.contents for f in result.files}


def versions(result: MountResult) -> dict[str, str]:
    return {v.id: v.version for v in result.versions}


async def test_kv2_secret_key(world: VaultWorld, provider: VaultProvider) -> None:
    path = f"{world.kv2}/data/team-a/app"
    result = await provider.mount(
        world.request(
            [
                {"objectName": "user", "secretPath": path, "secretKey": "username"},
                {"objectName": "limits.json", "secretPath": path, "secretKey": "limits"},
            ]
        )
    )
    # A non-string value is written as Go's json.Marshal writes it: compact.
    assert files(result) == {"user": b"alice", "limits.json": b'{"cpu":2}'}
    assert [f.mode for f in result.files] == [0o644, 0o644]
    assert [v.id for v in result.versions] == ["user", "limits.json"]
    assert all(v.version for v in result.versions)


async def test_whole_response_without_secret_key(
    world: VaultWorld, provider: VaultProvider
) -> None:
    path = f"{world.kv2}/data/team-a/app"
    result = await provider.mount(world.request([{"objectName": "all", "secretPath": path}]))
    body = json.loads(files(result)["all"])
    assert body["data"]["data"]["username"] == "alice"
    assert body["data"]["metadata"]["version"] == 1
    assert "request_id" in body


async def test_kv1(world: VaultWorld, provider: VaultProvider) -> None:
    obj = {
        "objectName": "key",
        "secretPath": f"/v1/{world.kv1}/team-a/legacy",
        "secretKey": "api_key",
    }
    assert files(await provider.mount(world.request([obj]))) == {"key": b"k1"}


async def test_version_pinning_by_query(world: VaultWorld, provider: VaultProvider) -> None:
    world.admin.kv_put(world.kv2, "team-a/pinned", {"v": "one"}, version=2)
    world.admin.kv_put(world.kv2, "team-a/pinned", {"v": "two"}, version=2)
    path = f"{world.kv2}/data/team-a/pinned"
    objects = [
        {"objectName": "old", "secretPath": f"{path}?version=1", "secretKey": "v"},
        {"objectName": "new", "secretPath": path, "secretKey": "v"},
    ]
    assert files(await provider.mount(world.request(objects))) == {"old": b"one", "new": b"two"}


async def test_encodings(world: VaultWorld, provider: VaultProvider) -> None:
    path = f"{world.kv2}/data/team-a/app"
    objects = [
        {"objectName": "b64", "secretPath": path, "secretKey": "cert_b64", "encoding": "base64"},
        {"objectName": "hex", "secretPath": path, "secretKey": "cert_hex", "encoding": "hex"},
    ]
    assert files(await provider.mount(world.request(objects))) == {"b64": CERT, "hex": CERT}


async def test_file_permission_and_default_mode(world: VaultWorld, provider: VaultProvider) -> None:
    path = f"{world.kv2}/data/team-a/app"
    objects_yaml = (
        f"- {{objectName: private, secretPath: {path}, secretKey: password,\n"
        "    filePermission: 0600}\n"
        f"- {{objectName: public, secretPath: {path}, secretKey: username}}\n"
    )
    result = await provider.mount(world.request(objects_yaml, default_mode=0o440))
    assert {f.path: f.mode for f in result.files} == {"private": 0o600, "public": 0o440}


async def test_shared_path_is_read_once_and_login_is_cached(
    world: VaultWorld, counted: tuple[VaultProvider, RequestCounter]
) -> None:
    provider, counter = counted
    path = f"{world.kv2}/data/team-a/app"
    objects = [
        {"objectName": "a", "secretPath": path, "secretKey": "username"},
        {"objectName": "b", "secretPath": f"/v1/{path}", "secretKey": "password"},
        {"objectName": "c", "secretPath": path},
    ]
    request = world.request(objects)
    await provider.mount(request)
    assert counter.reads(f"/v1/{path}") == 1
    assert counter.logins == 1
    # A second mount of the pod (rotation) with the same kubelet token reuses the Vault token.
    await provider.mount(request)
    assert counter.reads(f"/v1/{path}") == 2
    assert counter.logins == 1
    # A refreshed kubelet token logs in once: a Vault token only serves the JWT that bought it.
    uid = request.identity.uid
    refreshed = world.request(objects, tokens={"vault": world.jwt(pod_name="app-0", pod_uid=uid)})
    assert refreshed.identity.uid == uid
    await provider.mount(refreshed)
    await provider.mount(refreshed)
    assert counter.logins == 2
    assert len(provider._client._tokens) == 1  # the old JWT's token was dropped


async def test_version_changes_exactly_when_content_changes(
    world: VaultWorld, provider: VaultProvider
) -> None:
    world.admin.kv_put(world.kv2, "team-a/rotating", {"a": "1", "b": "x"}, version=2)
    path = f"{world.kv2}/data/team-a/rotating"
    objects = [
        {"objectName": "a", "secretPath": path, "secretKey": "a"},
        {"objectName": "b", "secretPath": path, "secretKey": "b"},
    ]
    first = versions(await provider.mount(world.request(objects)))
    assert first == versions(await provider.mount(world.request(objects)))
    world.admin.kv_put(world.kv2, "team-a/rotating", {"a": "2", "b": "x"}, version=2)
    second = versions(await provider.mount(world.request(objects)))
    assert second["a"] != first["a"]
    assert second["b"] == first["b"]
    # Same content under another object config: a different version, so equal secrets
    # cannot be recognised from their versions.
    renamed = [{"objectName": "b2", "secretPath": path, "secretKey": "b"}]
    assert versions(await provider.mount(world.request(renamed)))["b2"] != first["b"]


async def test_method_and_secret_args(world: VaultWorld, provider: VaultProvider) -> None:
    """PKI issue: one POST whose certificate and key land in two files and match."""
    admin = world.admin
    pki = unique("pki")
    admin.call("POST", f"sys/mounts/{pki}", {"type": "pki", "config": {"max_lease_ttl": "24h"}})
    admin.call("POST", f"{pki}/root/generate/internal", {"common_name": "test-ca", "ttl": "24h"})
    admin.call("POST", f"{pki}/roles/web", {"allow_any_name": True, "max_ttl": "1h"})
    policy = admin.write_policy(f"{pki}-issue", {f"{pki}/issue/web": ["update"]})
    role = admin.write_jwt_role(
        world.jwt_mount,
        "pki",
        audience="vault",
        namespace=world.namespace,
        service_account=world.service_account,
        policies=[policy],
    )
    args = {"common_name": "web.example.com", "ttl": "10m"}
    issue = {"secretPath": f"{pki}/issue/web", "method": "POST", "secretArgs": args}
    objects = [
        {"objectName": "tls.crt", "secretKey": "certificate", **issue},
        {"objectName": "tls.key", "secretKey": "private_key", **issue},
    ]
    result = files(await provider.mount(world.request(objects, roleName=role)))
    assert result["tls.crt"].startswith(b"-----BEGIN CERTIFICATE-----")
    assert b"PRIVATE KEY-----" in result["tls.key"]
    _check_pair(result["tls.crt"], result["tls.key"])


def _check_pair(cert_pem: bytes, key_pem: bytes) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert_key = x509.load_pem_x509_certificate(cert_pem).public_key()
    private = serialization.load_pem_private_key(key_pem, password=None)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    assert cert_key.public_bytes(der, spki) == private.public_key().public_bytes(der, spki)


async def test_openbao_flavour(world: VaultWorld, openbao: OpenBaoServer) -> None:
    """provider: openbao takes bao*/openbao* spellings and the "openbao" audience."""
    provider = VaultProvider("openbao", version_key=b"k" * 32, timeout=10, env={})
    try:
        request = world.request(
            [
                {
                    "objectName": "u",
                    "secretPath": f"{world.kv2}/data/team-a/app",
                    "secretKey": "username",
                }
            ],
            tokens={"openbao": world.jwt("openbao")},
            baoAddress=openbao.address,
            openbaoAuthMountPath=world.jwt_mount,
        )
        attributes = dict(request.attributes)
        del attributes["vaultAuthMountPath"]
        attributes["baoRoleName"] = attributes.pop("roleName")
        request = dataclasses.replace(request, attributes=attributes)
        assert files(await provider.mount(request)) == {"u": b"alice"}
    finally:
        await provider.close()
