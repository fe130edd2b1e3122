"""Sync as Kubernetes Secret through the agent's real socket against the fake API: every
Secret type (TLS from PEM and from PFX, certificates made here), labels and annotations,
the bare pod's status object as owner, a publish that never waits on Secret writes,
rotation by the scheduler, a change of type, and upstream's metric names."""

from __future__ import annotations

import base64
import io
import json
import os
from typing import Any

from cryptography.hazmat.primitives import serialization

from agent.logs import configure_logging
from agent.model import MANAGED_LABEL
from tests.fakes.kube_api import FakeKubeApi
from tests.support.clock import ManualClock
from tests.support.kube_agent import SPC, KubeAgents, KubeHarness, eventually
from tests.support.pki import chain, pfx

Object = dict[str, Any]
ROTATION_INTERVAL = 120.0


def data_of(secret: Object | None) -> dict[str, bytes]:
    assert secret is not None
    return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}


def entry(name: str, secret_type: str, *pairs: tuple[str, str], **extra: object) -> Object:
    """A secretObjects entry mapping (objectName, key) pairs."""
    data = [{"objectName": obj, "key": key} for obj, key in pairs]
    return {"secretName": name, "type": secret_type, "data": data, **extra}


def owners(secret: Object | None) -> list[str]:
    """The Secret's owner references, as ``Kind/name``."""
    assert secret is not None
    refs = secret["metadata"].get("ownerReferences") or ()
    return [f"{ref['kind']}/{ref['name']}" for ref in refs]


def status_owner(pod: str, namespace: str = "default", spc: str = SPC) -> str:
    """What a bare pod's Secret is owned by: the pod's SecretProviderClassPodStatus."""
    return f"SecretProviderClassPodStatus/{pod}-{namespace}-{spc}"


def _traditional(key: Any) -> bytes:
    return key.private_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


async def test_every_secret_type_is_synced_with_labels_annotations_and_an_owner(
    node: KubeHarness,
) -> None:
    pem_chain, pfx_chain = chain("pem.example.com", rsa_leaf=True), chain("pfx.example.com")
    docker = json.dumps({"auths": {"registry.example": {"auth": "dXNlcjpwdw=="}}}).encode()
    node.provider.files = {
        "username": b"admin",
        "password": b"s3cr3t",
        "id_ed25519": b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n",
        "registry.json": docker,
        "token-id": b"abcdef",
        "token-secret": b"0123456789abcdef",
        "sa-token": b"eyJhbGciOi.payload.sig",
        "tls/bundle.pem": pem_chain.leaf.pem + pem_chain.intermediate.pem + pem_chain.leaf.key_pem,
        "cert.pfx": pfx(
            pfx_chain.leaf.key, pfx_chain.leaf.certificate, [pfx_chain.intermediate.certificate]
        ),
    }
    objects = [
        entry("opaque", "Opaque", ("username", "user"), ("password", "pass"),
              labels={"team": "a"}, annotations={"example.com/owner": "team-a"}),
        entry("basic", "kubernetes.io/basic-auth", ("username", "username"),
              ("password", "password")),
        entry("ssh", "kubernetes.io/ssh-auth", ("id_ed25519", "ssh-privatekey")),
        entry("docker", "kubernetes.io/dockerconfigjson", ("registry.json", ".dockerconfigjson")),
        entry("dockercfg", "kubernetes.io/dockercfg", ("registry.json", ".dockercfg")),
        entry("bootstrap", "bootstrap.kubernetes.io/token", ("token-id", "token-id"),
              ("token-secret", "token-secret")),
        entry("sa", "kubernetes.io/service-account-token", ("sa-token", "token"),
              annotations={"kubernetes.io/service-account.name": "web"}),
        entry("tls-pem", "kubernetes.io/tls", ("tls/bundle.pem", "tls.crt"),
              ("tls/bundle.pem", "tls.key")),
        entry("tls-pfx", "kubernetes.io/tls", ("cert.pfx", "tls.crt"), ("cert.pfx", "tls.key")),
        entry("custom", "example.com/custom", ("password", "value")),
    ]  # fmt: skip
    node.add_spc(secret_objects=objects)
    web = await node.add_pod("web-0")
    await node.publish(web)
    await node.synced()

    opaque = node.secret("opaque")
    assert opaque is not None
    assert opaque["type"] == "Opaque"
    assert data_of(opaque) == {"user": b"admin", "pass": b"s3cr3t"}
    assert opaque["metadata"]["labels"] == {"team": "a", MANAGED_LABEL: "true"}
    assert opaque["metadata"]["annotations"] == {"example.com/owner": "team-a"}
    # A bare pod: its status object owns the Secret (and the pod owns the status).
    status = node.status("web-0-default-app-secrets")
    assert status is not None
    assert opaque["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "secrets-store.csi.x-k8s.io/v1",
            "kind": "SecretProviderClassPodStatus",
            "name": "web-0-default-app-secrets",
            "uid": status["metadata"]["uid"],
        }
    ]
    expected_types = {o["secretName"]: o["type"] for o in objects}
    for name, secret_type in expected_types.items():
        secret = node.secret(name)
        assert secret is not None, name
        assert secret["type"] == secret_type
        assert secret["metadata"]["labels"][MANAGED_LABEL] == "true"
        assert owners(secret) == [status_owner("web-0")]
    assert data_of(node.secret("docker")) == {".dockerconfigjson": docker}
    assert data_of(node.secret("sa")) == {"token": b"eyJhbGciOi.payload.sig"}
    assert data_of(node.secret("tls-pem")) == {
        "tls.crt": pem_chain.leaf.pem + pem_chain.intermediate.pem,
        "tls.key": _traditional(pem_chain.leaf.key),
    }
    assert data_of(node.secret("tls-pfx")) == {
        "tls.crt": pfx_chain.leaf.pem + pfx_chain.intermediate.pem,
        "tls.key": _traditional(pfx_chain.leaf.key),
    }
    assert [e for e in node.events() if e["type"] == "Warning"] == []
    metrics = node.agent.metrics.exposition()[0].decode()
    assert 'sync_k8s_secret_total{os_type="linux",provider="fake"} 10.0' in metrics
    assert 'k8s_secret_duration_sec_count{os_type="linux"} 1.0' in metrics


async def test_publish_returns_before_the_secret_is_written(
    node: KubeHarness, kube_api: FakeKubeApi
) -> None:
    node.add_spc(secret_objects=[entry("db", "Opaque", ("password", "password"))])
    held = kube_api.faults.hold(verb="create", resource="secrets")
    target = await node.publish(await node.add_pod("web-0"))
    await held.wait_held()
    assert os.path.exists(os.path.join(target, "password"))  # the mount is done, kubelet answered
    assert node.secret("db") is None
    held.release()
    await node.synced()
    assert data_of(node.secret("db")) == {"password": b"s3cr3t"}


async def test_rotated_content_updates_the_secret_with_a_normal_event(
    agents: KubeAgents,
) -> None:
    """The rotation scheduler (manual clock) re-syncs the Secret after content changed."""
    clock = ManualClock()
    node = await agents.start(
        clock=clock, enable_secret_rotation=True, rotation_poll_interval=ROTATION_INTERVAL
    )
    node.add_spc(secret_objects=[entry("db", "Opaque", ("password", "password"))])
    web = await node.add_pod("web-0")
    await node.publish(web)
    await node.synced()
    before = node.secret("db")
    assert data_of(before) == {"password": b"s3cr3t"}
    node.provider.files["password"] = b"n3w-v4lue"
    await rotate(node, clock)
    after = node.secret("db")
    assert data_of(after) == {"password": b"n3w-v4lue"}
    assert after is not None and before is not None
    assert after["metadata"]["uid"] == before["metadata"]["uid"]  # updated in place
    event = await node.event("SecretRotationComplete")
    assert event["type"] == "Normal"
    assert event["message"] == "successfully rotated K8s secret db"
    assert "n3w-v4lue" not in json.dumps(node.events())  # no secret value in any event
    # Unchanged content: a rotation that fetched the same files writes no Secret at all.
    mark = node.kube.requests.mark()
    fetches = len(node.provider.requests)
    await rotate(node, clock)
    assert len(node.provider.requests) == fetches + 1
    assert node.kube.requests.since(mark, resource="secrets", method="PATCH") == []


async def rotate(node: KubeHarness, clock: ManualClock) -> None:
    """Move past the rotation interval; wait until the scheduler (and the sync it calls) is done."""
    assert node.agent.rotation is not None
    clock.advance(ROTATION_INTERVAL * 1.11)  # past the interval and its jitter
    await node.agent.rotation.settle()
    await node.synced()


async def test_a_changed_type_recreates_the_secret(node: KubeHarness) -> None:
    node.add_spc(secret_objects=[entry("db", "Opaque", ("password", "password"))])
    await node.publish(await node.add_pod("web-0"))
    await node.synced()
    await node.change_spc(secret_objects=[entry("db", "example.com/db", ("password", "password"))])
    # No pass is triggered here: a change of secretObjects re-syncs the class's volumes.
    await eventually(
        lambda: (node.secret("db") or {}).get("type") == "example.com/db", "the new type"
    )
    secret = node.secret("db")
    assert secret is not None and secret["type"] == "example.com/db"
    assert owners(secret) == [status_owner("web-0")]


async def test_labels_and_annotations_of_others_are_kept(node: KubeHarness) -> None:
    objects = [entry("db", "Opaque", ("password", "password"), labels={"team": "a"})]
    node.add_spc(secret_objects=objects)
    await node.publish(await node.add_pod("web-0"))
    await node.synced()
    node.kube.store.patch(
        "secrets", "default", "db", {"metadata": {"annotations": {"reloader/hash": "x"}}}
    )
    objects[0]["labels"] = {"team": "b"}
    await node.change_spc(secret_objects=objects)
    await node.resync()
    secret = node.secret("db")
    assert secret is not None
    assert secret["metadata"]["labels"] == {"team": "b", MANAGED_LABEL: "true"}
    assert secret["metadata"]["annotations"] == {"reloader/hash": "x"}


async def test_log_lines_name_the_synced_secret(node: KubeHarness) -> None:
    lines = io.StringIO()
    configure_logging(json=True, verbosity=0, stream=lines)
    node.add_spc(secret_objects=[entry("db", "Opaque", ("password", "password"))])
    web = await node.add_pod("web-0")
    target = await node.publish(web)
    await node.synced()
    await node.kubelet.unpublish(node.request(web).volume_id, target)
    await eventually(lambda: node.secret("db") is None, "the Secret deleted with its last pod")
    sync = [
        e
        for e in map(json.loads, lines.getvalue().splitlines())
        if e["event"].startswith("secret_sync.")
    ]
    # Not "secret": the log redaction hides whatever is logged under that key. Whether the
    # agent or the garbage collector (the SPCPS owns a bare pod's Secret) deletes it is a race.
    assert [e["secret_name"] for e in sync if e["event"] == "secret_sync.created"] == ["db"]
    assert all("secret" not in e for e in sync)
