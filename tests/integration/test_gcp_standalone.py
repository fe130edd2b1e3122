"""End to end: the agent in standalone mode (SecretProviderClass and ServiceAccount manifests in
a directory), its built-in ``gcp`` provider configured through the environment to use the fake
Google Cloud, and a grpcio kubelet publishing a volume through the CSI socket."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import yaml

from agent._proto.csi import v1 as csi
from agent.app import build_agent
from agent.lifecycle import Agent
from tests.conftest import agent_settings
from tests.support.gcp import POOL, PROJECT, GcpWorld
from tests.support.kubelet import POD_UID, Kubelet, kubelet_target, publish_request
from tests.support.mounts import is_root, mounts_under

NUMBER = "123456789"
GSA = "web@proj-a.iam.gserviceaccount.com"

MANIFESTS = """\
apiVersion: v1
kind: ServiceAccount
metadata:
  name: web
  namespace: team-a
  annotations:
    iam.gke.io/gcp-service-account: {gsa}
---
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: app-secrets
  namespace: team-a
spec:
  provider: gcp
  parameters:
    secrets: |
      - resourceName: "projects/proj-a/secrets/db-password/versions/latest"
        path: "db/password"
        mode: 0400
      - resourceName: "projects/proj-a/locations/europe-west4/secrets/api/versions/1"
        fileName: "api.json"
      - resourceName: "projects/proj-a/secrets/config/versions/1"
        fileName: "user"
        extractJSONKey: user
"""


@pytest.fixture
async def agent(
    gcp: GcpWorld, agent_root: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Agent]:
    for name, value in gcp.env.items():
        monkeypatch.setenv(name, value)
    settings = agent_settings(agent_root)
    (agent_root / "spc" / "app.yaml").write_text(MANIFESTS.format(gsa=GSA))
    running = build_agent(settings)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


def web_pod_publish(
    gcp: GcpWorld, target: Path, spc: str = "app-secrets"
) -> csi.NodePublishVolumeRequest:
    """Kubelet's NodePublishVolume for pod team-a/web-0 with its pool token."""
    return publish_request(
        str(target),
        spc=spc,
        namespace="team-a",
        service_account="web",
        tokens={POOL: gcp.pod_token()},
    )


def world_with_secrets(gcp: GcpWorld) -> None:
    state = gcp.cloud.state
    state.add_secret_version(PROJECT, "db-password", b"old")
    state.add_secret_version(PROJECT, "db-password", b"s3cret")
    state.add_secret_version(PROJECT, "api", b'{"k": 1}', location="europe-west4")
    state.add_secret_version(PROJECT, "config", json.dumps({"user": "alice"}).encode())
    for entry in state.secrets.values():
        entry.readers.add(f"serviceAccount:{GSA}")
    state.token_creators[GSA] = {gcp.cloud.ksa_principal("team-a", "web")}


async def test_standalone_gcp_volume_through_the_csi_socket(
    gcp: GcpWorld, agent: Agent, agent_root: Path
) -> None:
    world_with_secrets(gcp)
    target = Path(kubelet_target(agent_root, "gcp", POD_UID))
    kubelet = Kubelet(agent.settings.socket_path)
    request = web_pod_publish(gcp, target)
    try:
        await kubelet.publish(request)
        assert (target / "db" / "password").read_bytes() == b"s3cret"
        assert (target / "api.json").read_bytes() == b'{"k": 1}'
        assert (target / "user").read_bytes() == b"alice"
        assert os.stat(target / "db" / "password").st_mode & 0o777 == 0o400
        assert os.stat(target / "user").st_mode & 0o777 == 0o644
        if is_root():
            assert mounts_under(str(target)) == [str(target)]
        assert agent.status_files is not None
        await agent.status_files.wait_idle()  # written behind the reply
        status = agent.status_files.path_for("team-a", "web-0-team-a-app-secrets")
        objects = yaml.safe_load(status.read_text())["status"]["objects"]
        assert sorted(objects, key=lambda o: o["id"]) == [
            {
                "id": "projects/proj-a/locations/europe-west4/secrets/api/versions/1",
                "version": f"projects/{NUMBER}/locations/europe-west4/secrets/api/versions/1",
            },
            {
                "id": "projects/proj-a/secrets/config/versions/1",
                "version": f"projects/{NUMBER}/secrets/config/versions/1",
            },
            {
                "id": "projects/proj-a/secrets/db-password/versions/latest",
                "version": f"projects/{NUMBER}/secrets/db-password/versions/2",
            },
        ]
        # pod-adc never loads google-auth.
        assert "google.auth" not in sys.modules or gcp.cloud.count("/token") == 0
    finally:
        await kubelet.unpublish(request.volume_id, str(target))
        await kubelet.close()
    assert not target.exists()


async def test_bad_secret_mounts_nothing_and_names_the_field(
    gcp: GcpWorld, agent: Agent, agent_root: Path
) -> None:
    world_with_secrets(gcp)
    gcp.cloud.corrupt.add("api")
    target = Path(kubelet_target(agent_root, "gcp", POD_UID))
    kubelet = Kubelet(agent.settings.socket_path)
    request = web_pod_publish(gcp, target)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await kubelet.publish(request)
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "secrets[1] projects/proj-a/locations/europe-west4/secrets/api/versions/1" in (
            info.value.details() or ""
        )
        assert "CRC32C" in (info.value.details() or "")
        assert not target.exists() or not os.listdir(target)
        assert not mounts_under(str(agent_root))
    finally:
        await kubelet.close()


BAD_SPC = """\
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {{name: bad, namespace: team-a}}
spec:
  provider: gcp
  parameters:
    secrets: |
      - resourceName: projects/proj-a/secrets/db-password/versions/latest
        fileName: ok
      - resourceName: projects/proj-a/secrets/db-password/versions/latest
        fileName: {file_name}
"""


@pytest.mark.parametrize(
    ("file_name", "message"),
    [
        ("../../escape", "secrets[1].fileName: invalid file path '../../escape'"),
        ("/etc/cron.d/x", "secrets[1].fileName: invalid file path '/etc/cron.d/x'"),
    ],
)
async def test_a_file_name_escaping_the_volume_is_refused_naming_the_field(
    gcp: GcpWorld, agent: Agent, agent_root: Path, file_name: str, message: str
) -> None:
    world_with_secrets(gcp)
    (agent_root / "spc" / "bad.yaml").write_text(BAD_SPC.format(file_name=file_name))
    target = Path(kubelet_target(agent_root, "bad", POD_UID))
    kubelet = Kubelet(agent.settings.socket_path)
    request = web_pod_publish(gcp, target, spc="bad")
    try:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await kubelet.publish(request)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in (info.value.details() or "")
        assert gcp.cloud.requests == []
        assert not target.exists() or not os.listdir(target)
        assert not mounts_under(str(agent_root))
    finally:
        await kubelet.close()
