"""Secret sync failures through the agent's socket against the fake API: bad secretObjects
entries are Warning events naming the field while the other Secrets sync; a Forbidden
answer says which chart setting grants Secret access; conflicts and outages are retried;
and the publish succeeds in every case."""

from __future__ import annotations

import json

from agent.sync.pem import encode
from agent.sync.syncer import SecretSyncer
from tests.fakes.kube.faults import Fault
from tests.fakes.kube_api import FakeKubeApi
from tests.integration.k8s.test_secret_sync import data_of, entry, owners, status_owner
from tests.support.kube_agent import KubeHarness, eventually
from tests.support.pki import issue


async def _warnings(node: KubeHarness, count: int) -> list[str]:
    def found() -> list[str]:
        return [e["message"] for e in node.events() if e["reason"] == "FailedToCreateSecret"]

    await eventually(lambda: len(found()) >= count, f"{count} FailedToCreateSecret events")
    return sorted(found())


async def test_bad_entries_are_named_and_the_good_secret_still_syncs(node: KubeHarness) -> None:
    cert = issue("bad-key.example.com")
    garbage_key = encode("PRIVATE KEY", b"\x30\x03\x02\x01\x00")
    node.provider.files["broken.pem"] = cert.pem + garbage_key
    node.add_spc(
        secret_objects=[
            {"secretName": "untyped", "data": [{"objectName": "password", "key": "p"}]},
            entry("unknown", "Opaque", ("no-such-object", "value")),
            entry("tls", "kubernetes.io/tls", ("broken.pem", "tls.crt"),
                  ("broken.pem", "tls.key")),
            entry("good", "Opaque", ("password", "password")),
        ]
    )  # fmt: skip
    await node.publish(await node.add_pod("web-0"))
    await node.synced()
    assert data_of(node.secret("good")) == {"password": b"s3cr3t"}
    assert [node.secret(name) for name in ("untyped", "unknown", "tls")] == [None] * 3
    untyped, unknown, tls = await _warnings(node, 3)
    assert untyped.startswith("spec.secretObjects[0].type is missing for secret untyped")
    assert unknown.startswith(
        "spec.secretObjects[1].data[0].objectName: no file 'no-such-object' is mounted"
    )
    assert tls.startswith("spec.secretObjects[2].data[1]: cannot take tls.key from file")
    assert "not an RSA or EC private key" in tls
    assert "MAMCAQA" not in json.dumps(node.events())  # the key block's base64 is not quoted
    metrics = node.agent.metrics.exposition()[0].decode()
    assert 'sync_k8s_secret_total{os_type="linux",provider="fake"} 1.0' in metrics
    assert 'error_type="InvalidSecretObject"' in metrics
    assert 'error_type="InvalidSecretData"' in metrics
    # Broken entries wait for a change of the class (not retried sooner than a full pass);
    # the good Secret stays in sync.
    jobs = node.agent.secret_sync
    assert jobs is not None and isinstance(jobs.sync, SecretSyncer)
    assert not jobs.sync.failing
    await node.resync()
    assert data_of(node.secret("good")) == {"password": b"s3cr3t"}


async def test_what_the_api_would_refuse_is_named_by_field_and_never_sent(
    node: KubeHarness,
) -> None:
    node.add_spc(
        secret_objects=[
            entry("db..prod", "Opaque", ("password", "password")),
            entry("labelled", "Opaque", ("password", "password"), labels={"team": "a b"}),
            entry("dotted", "Opaque", ("password", "..password")),
            entry("good", "Opaque", ("password", "password")),
        ]
    )
    mark = node.kube.requests.mark()
    await node.publish(await node.add_pod("web-0"))
    await node.synced()
    assert data_of(node.secret("good")) == {"password": b"s3cr3t"}
    name, label, key = await _warnings(node, 3)
    assert name.startswith("spec.secretObjects[0].secretName: 'db..prod' is not a valid")
    assert label.startswith("spec.secretObjects[1].labels.team: 'a b' is not a valid label")
    assert key.startswith("spec.secretObjects[2].data[0].key: '..password' is not a valid")
    writes = node.kube.requests.since(mark, resource="secrets", method="POST")
    assert len(writes) == 1  # only "good": nothing the server would answer with a 422


async def test_data_over_a_secrets_1_mib_is_named_and_never_sent(node: KubeHarness) -> None:
    """Upstream §15 item 7: the API refuses a Secret over 1 MiB; the agent says so, naming the
    entry, before asking, and the volume (which may hold more) still mounts."""
    mib = 1024 * 1024
    node.provider.files.update({"huge": b"h" * (mib + 1), "half": b"a" * (mib // 2 + 1)})
    node.add_spc(
        secret_objects=[
            entry("one-file", "Opaque", ("huge", "k")),
            entry("two-halves", "Opaque", ("half", "a"), ("half", "b")),
            entry("good", "Opaque", ("password", "password")),
        ]
    )
    mark = node.kube.requests.mark()
    target = await node.publish(await node.add_pod("web-0"))
    await node.synced()
    assert node.agent.table.get(target) is not None
    assert data_of(node.secret("good")) == {"password": b"s3cr3t"}
    one_file, two_halves = await _warnings(node, 2)
    assert one_file.startswith(
        "spec.secretObjects[0]: file 'huge' is larger than a Secret may hold (1 MiB)"
    )
    assert two_halves.startswith(
        "spec.secretObjects[1]: its data is larger than a Secret may hold (1 MiB)"
    )
    writes = node.kube.requests.since(mark, resource="secrets", method="POST")
    assert len(writes) == 1  # only "good"


async def test_forbidden_says_which_chart_setting_grants_access(
    node: KubeHarness, kube_api: FakeKubeApi
) -> None:
    forbidden = kube_api.faults.fail(403, resource="secrets", times=None)
    node.add_spc(secret_objects=[entry("db", "Opaque", ("password", "password"))])
    target = await node.publish(await node.add_pod("web-0"))  # the mount does not care
    await node.synced()
    assert node.agent.table.get(target) is not None
    (message,) = await _warnings(node, 1)
    assert message.startswith("secret default/db: get secrets default/db: HTTP 403")
    assert "set syncSecret.enabled=true" in message
    kube_api.faults.clear()
    assert forbidden.hits >= 1
    await node.resync()  # access granted: the next pass syncs
    assert data_of(node.secret("db")) == {"password": b"s3cr3t"}


async def test_a_forbidden_that_is_no_rbac_denial_gets_no_chart_hint(
    node: KubeHarness, kube_api: FakeKubeApi
) -> None:
    """A 403 from a namespace being terminated (or an admission policy) is not fixed by the
    chart's syncSecret.enabled, so the event does not send the user there."""
    terminating = (
        'secrets "db" is forbidden: unable to create new content in namespace default '
        "because it is being terminated"
    )
    kube_api.faults.add(Fault(status=403, message=terminating, resource="secrets", times=None))
    node.add_spc(secret_objects=[entry("db", "Opaque", ("password", "password"))])
    await node.publish(await node.add_pod("web-0"))
    await node.synced()
    (message,) = await _warnings(node, 1)
    assert "because it is being terminated" in message
    assert "syncSecret.enabled" not in message


async def test_a_conflicting_writer_is_read_again_and_an_outage_retried_by_resync(
    node: KubeHarness, kube_api: FakeKubeApi
) -> None:
    node.add_spc(secret_objects=[entry("db", "Opaque", ("password", "password"))])
    # A managed Secret with stale data and no owner, as another node may leave one.
    node.kube.store.put(STALE)
    conflict = kube_api.faults.fail(409, verb="patch", resource="secrets", times=1)
    await node.publish(await node.add_pod("web-0"))
    await node.synced()
    assert conflict.hits == 1  # the first patch lost a race: read again, patched again
    assert data_of(node.secret("db")) == {"password": b"s3cr3t"}
    assert owners(node.secret("db")) == [status_owner("web-0")]
    jobs = node.agent.secret_sync
    assert jobs is not None
    syncer = jobs.sync
    assert isinstance(syncer, SecretSyncer)
    kube_api.faults.fail(503, resource="secrets", times=None)
    node.kube.store.delete("secrets", "default", "db")
    await node.resync()
    assert syncer.failing  # kept for a sooner retry than the next full pass
    kube_api.faults.clear()
    await node.resync()
    assert node.secret("db") is not None
    assert not syncer.failing


STALE = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {
        "name": "db",
        "namespace": "default",
        "labels": {"secrets-store.csi.k8s.io/managed": "true"},
    },
    "type": "Opaque",
    "stringData": {"password": "stale"},
}
