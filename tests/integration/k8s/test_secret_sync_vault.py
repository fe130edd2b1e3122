"""End to end with a real OpenBao: a secret changes in OpenBao, a rotation refetches it, and
both the mounted file and the synced Kubernetes Secret (in the fake API) change.

The rotation here is the scheduler's, on a manual clock moved past the interval.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from agent.provider_setup import load_version_key
from agent.providers.registry import ProviderRegistry
from tests.fakes.kube_api import FakeKubeApi, secret_provider_class
from tests.integration.k8s.test_secret_sync import (
    ROTATION_INTERVAL,
    data_of,
    owners,
    rotate,
    status_owner,
)
from tests.support.clock import ManualClock
from tests.support.jwt_signer import JwtSigner
from tests.support.kube_agent import KubeAgents
from tests.support.openbao import OpenBaoServer, VaultWorld, build_world

FIRST, SECOND = "first-value-7c1e", "second-value-93ab"


@pytest.fixture
def world(openbao: OpenBaoServer, jwt_signer: JwtSigner) -> VaultWorld:
    world = build_world(openbao, jwt_signer)
    world.admin.kv_put(world.kv2, "team-a/db", {"password": FIRST}, version=2)
    return world


async def test_a_secret_changed_in_openbao_reaches_the_file_and_the_synced_secret(
    agents: KubeAgents, kube_api: FakeKubeApi, world: VaultWorld, tmp_path: Path
) -> None:
    objects = [
        {"objectName": "db", "secretPath": f"{world.kv2}/data/team-a/db", "secretKey": "password"}
    ]
    kube_api.store.put(
        secret_provider_class(
            "db", namespace=world.namespace, provider="vault",
            parameters={"roleName": world.role, "vaultAuthMountPath": world.jwt_mount,
                        "objects": yaml.safe_dump(objects)},
            secret_objects=[{"secretName": "db-credentials", "type": "Opaque",
                             "data": [{"objectName": "db", "key": "password"}]}],
        )
    )  # fmt: skip
    registry = ProviderRegistry(
        timeout=10,
        version_key=load_version_key(str(tmp_path / "state")),
        options={"vault_address": world.server.address},
        load_entry_points=False,
    )
    clock = ManualClock(start=time.time())
    node = await agents.start(
        registry=registry,
        clock=clock,
        enable_secret_rotation=True,
        rotation_poll_interval=ROTATION_INTERVAL,
    )
    pod = await node.add_pod(
        "app-0", world.namespace, spc="db", service_account=world.service_account
    )
    uid = pod["metadata"]["uid"]
    tokens = {"vault": world.jwt(pod_name="app-0", pod_uid=uid)}
    options = {"spc": "db", "tokens": tokens, "service_account": world.service_account}
    target = await node.publish(pod, **options)
    await node.synced()
    assert (Path(target) / "db").read_text() == FIRST
    synced = node.secret("db-credentials", world.namespace)
    assert data_of(synced) == {"password": FIRST.encode()}
    assert owners(synced) == [status_owner("app-0", world.namespace, "db")]

    world.admin.kv_put(world.kv2, "team-a/db", {"password": SECOND}, version=2)
    await rotate(node, clock)  # due: refetched from OpenBao
    assert (Path(target) / "db").read_text() == SECOND
    assert data_of(node.secret("db-credentials", world.namespace)) == {"password": SECOND.encode()}
    event = await node.event("SecretRotationComplete", world.namespace)
    assert event["message"] == "successfully rotated K8s secret db-credentials"
    shown = json.dumps(node.events(world.namespace))
    assert FIRST not in shown and SECOND not in shown
