"""Small core pieces: keyed locks, error → status table, metadata records, provider registry."""

from __future__ import annotations

import asyncio

import pytest
from grpclib.const import Status

from agent import errors
from agent.aio.inflight import InFlight
from agent.aio.locks import KeyedLock
from agent.core.records import record_from_metadata, record_to_metadata
from agent.csi.status import to_grpc_error
from agent.model import ObjectVersion, PodIdentity, ServiceAccountToken, VolumeRecord
from agent.providers.registry import ProviderRegistry
from tests.support.fake_provider import FakeProvider


async def test_keyed_lock_serializes_one_key_and_forgets_idle_keys() -> None:
    locks, order = KeyedLock(), []

    async def worker(key: str, tag: str) -> None:
        async with locks.hold(key):
            order.append(f"{tag}-in")
            await asyncio.sleep(0.01)
            order.append(f"{tag}-out")

    await asyncio.gather(worker("a", "1"), worker("a", "2"), worker("b", "3"))
    assert order.index("1-out") < order.index("2-in")
    assert order.index("3-in") < order.index("1-out")  # another key does not wait
    assert len(locks) == 0


async def test_inflight_drain_refuses_new_calls() -> None:
    inflight = InFlight()
    with inflight.track():
        assert inflight.count == 1
        assert await inflight.drain(0.01) is False
    assert await inflight.drain(0.01) is True
    with pytest.raises(errors.ShuttingDown), inflight.track():
        pass


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (errors.InvalidRequest("x"), Status.INVALID_ARGUMENT),
        (errors.SecretProviderClassNotFound("x"), Status.NOT_FOUND),
        (errors.ProviderNotFound("x"), Status.FAILED_PRECONDITION),
        (errors.ProviderTimeout("x"), Status.DEADLINE_EXCEEDED),
        (errors.ProviderUnavailable("x"), Status.UNAVAILABLE),
        (errors.ProviderError("x"), Status.FAILED_PRECONDITION),
        (errors.PayloadError("x"), Status.INVALID_ARGUMENT),
        (errors.FileWriteError("x"), Status.INTERNAL),
        (errors.MountError("x"), Status.INTERNAL),
        (errors.ShuttingDown("x"), Status.UNAVAILABLE),
        (ValueError("secret text"), Status.INTERNAL),
    ],
)
def test_every_error_maps_to_a_code_never_unknown(error: Exception, status: Status) -> None:
    grpc_error = to_grpc_error(error)
    assert grpc_error.status == status
    assert "secret text" not in (grpc_error.message or "")


def test_metadata_round_trip_drops_tokens() -> None:
    pod = PodIdentity("ns", "pod", "uid", "sa", {"vault": ServiceAccountToken("jwt-secret")})
    record = VolumeRecord("/t", "vol", pod, "spc", "vault", (ObjectVersion("a", "1"),), 1.0, 2.0)
    document = record_to_metadata(record)
    assert "jwt-secret" not in repr(document)
    restored = record_from_metadata(document)
    assert restored is not None
    assert restored.pod.tokens == {}
    assert (restored.target_path, restored.versions, restored.updated_at) == (
        "/t",
        record.versions,
        2.0,
    )
    assert record_from_metadata({"target_path": "/t"}) is None


@pytest.mark.parametrize(
    ("saved", "restored"),
    [(4321, 4321), (0, 0), (None, None), (-1, None), (2**32 - 1, None), ("5", None), (True, None)],
)
def test_metadata_keeps_the_mount_group_and_drops_what_is_not_one(
    saved: object, restored: int | None
) -> None:
    pod = PodIdentity("ns", "pod", "uid")
    document = record_to_metadata(VolumeRecord("/t", "vol", pod, "spc", "vault", mount_group=7))
    assert document["mount_group"] == 7
    document["mount_group"] = saved
    record = record_from_metadata(document)
    assert record is not None and record.mount_group == restored


def test_registry_unknown_provider_lists_available() -> None:
    registry = ProviderRegistry(timeout=1, version_key=b"k", load_entry_points=False)
    with pytest.raises(errors.ProviderNotFound) as info:
        registry.get("azure-typo")
    assert "'azure-typo'" in info.value.message
    assert "openbao" in info.value.message and "vault" in info.value.message


def test_registry_builds_lazily_once() -> None:
    built: list[str] = []

    def factory(context: object) -> FakeProvider:
        built.append("x")
        return FakeProvider()

    registry = ProviderRegistry(
        timeout=1, version_key=b"k", factories={"fake": factory}, load_entry_points=False
    )
    assert built == []
    assert registry.get("fake") is registry.get("fake")
    assert built == ["x"]


def test_third_party_providers_register_through_entry_points(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.metadata

    found = [
        importlib.metadata.EntryPoint(
            name="acme",
            value="tests.support.fake_provider:entry_point_factory",
            group="secrets_store_agent.providers",
        ),
        importlib.metadata.EntryPoint(
            name="broken", value="no.such.module:factory", group="secrets_store_agent.providers"
        ),
        importlib.metadata.EntryPoint(
            name="vault", value="tests.support.fake_provider:entry_point_factory", group="x"
        ),
    ]
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: found)
    registry = ProviderRegistry(timeout=1, version_key=b"k")
    assert "acme" in registry.names()
    assert registry.get("acme").name == "acme"
    assert "broken" not in registry.names()  # a broken plugin does not stop the others
    assert type(registry.get("vault")).__name__ == "VaultProvider"  # built-ins are not shadowed


async def test_trusted_file_dirs_reach_the_vault_provider() -> None:
    from agent.flags import parse_settings
    from agent.model import PodIdentity, ProviderRequest

    settings, _ = parse_settings(["--trusted-file-dirs=/etc/vault-ca,/run/vault"])
    assert settings.trusted_file_dirs == ("/etc/vault-ca", "/run/vault")
    registry = ProviderRegistry(
        timeout=1,
        version_key=b"k",
        trusted_dirs=settings.trusted_file_dirs,
        load_entry_points=False,
    )
    attributes = {
        "roleName": "app",
        "vaultAddress": "http://127.0.0.1:1",
        "vaultCACertPath": "/var/lib/kubelet/pods/other/ca.pem",
        "objects": "- objectName: a\n  secretPath: secret/data/a\n",
    }
    request = ProviderRequest(attributes, {}, PodIdentity("ns", "p", "u"), "/t")
    with pytest.raises(errors.InvalidSecretProviderClass) as info:
        await registry.get("vault").mount(request)
    assert "vaultCACertPath" in info.value.message and "/etc/vault-ca" in info.value.message
    await registry.close()
