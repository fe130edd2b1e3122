"""End to end: the agent in standalone mode (SecretProviderClass and ServiceAccount manifests
in a directory), its built-in ``azure`` provider configured only through the operator's
environment, kubelet's NodePublishVolume over the CSI socket with grpcio, real tmpfs as root."""

from __future__ import annotations

import base64
import contextlib
import os
import stat
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import serialization

from agent._proto.csi import v1 as csi
from agent.app import build_agent
from agent.lifecycle import Agent
from agent.providers.azure.content import CONTENT_TYPE_PFX
from tests.conftest import agent_settings
from tests.fakes.azure_entra import EXCHANGE_AUDIENCE
from tests.support.azure import (
    NAMESPACE,
    POD,
    SERVICE_ACCOUNT,
    SP_CLIENT,
    SP_SECRET,
    TENANT,
    VAULT,
    WI_CLIENT,
    AzureWorld,
    objects_parameter,
)
from tests.support.kubelet import POD_UID, Kubelet, kubelet_target, publish_request
from tests.support.mounts import is_root, mounts_under
from tests.support.pki import chain, pfx

SPC = """\
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: {name}
  namespace: {namespace}
spec:
  provider: azure
  parameters:
    keyvaultName: {vault}
    tenantID: {tenant}
    cloudName: AzureStackCloud
    objects: |
{objects}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {service_account}
  namespace: {namespace}
  annotations:
    azure.workload.identity/client-id: {client_id}
"""


@dataclass
class Node:
    agent: Agent
    kubelet: Kubelet
    root: Path

    def target(self, volume: str = "secrets") -> str:
        return kubelet_target(self.root, volume, POD_UID)

    def write_spc(self, name: str, objects: list[dict[str, object]]) -> None:
        text = SPC.format(
            name=name,
            namespace=NAMESPACE,
            vault=VAULT,
            tenant=TENANT,
            service_account=SERVICE_ACCOUNT,
            client_id=WI_CLIENT,
            objects=textwrap.indent(objects_parameter(objects), " " * 6),
        )
        (self.root / "spc" / f"{name}.yaml").write_text(text)


@contextlib.asynccontextmanager
async def running_node(
    azure: AzureWorld, root: Path, monkeypatch: pytest.MonkeyPatch, **flags: object
) -> AsyncIterator[Node]:
    """The agent in standalone mode with the operator's Azure settings and ``flags``."""
    for key, value in azure.env.items():  # the operator's settings, as the chart would set them
        monkeypatch.setenv(key, value)
    settings = agent_settings(root, **flags)
    agent = build_agent(settings)  # the real registry: built-in providers, loaded on first use
    await agent.start()
    kubelet = Kubelet(settings.socket_path)
    try:
        yield Node(agent, kubelet, root)
    finally:
        for record in list(agent.table):
            await kubelet.unpublish(record.volume_id, record.target_path)
        await kubelet.close()
        await agent.stop()


@pytest.fixture
async def node(
    azure: AzureWorld, agent_root: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Node]:
    async with running_node(azure, agent_root, monkeypatch) as running:
        yield running


async def publish(
    node: Node, azure: AzureWorld, spc: str, volume: str = "secrets"
) -> csi.NodePublishVolumeResponse:
    request = publish_request(
        node.target(volume),
        spc=spc,
        pod=POD,
        namespace=NAMESPACE,
        service_account=SERVICE_ACCOUNT,
        tokens={EXCHANGE_AUDIENCE: azure.pod_token()},
        volume_id=f"csi-{volume}",
    )
    return await node.kubelet.publish(request)


async def test_publish_through_the_socket(node: Node, azure: AzureWorld) -> None:
    c = chain("shop.example.com")
    azure.vault.add_secret("db-password", "s3cret")
    data = pfx(c.leaf.key, c.leaf.certificate, [c.root.certificate, c.intermediate.certificate])
    azure.vault.add_certificate(
        "shop-tls",
        der=c.leaf.der,
        secret_value=base64.b64encode(data).decode(),
        content_type=CONTENT_TYPE_PFX,
    )
    node.write_spc(
        "azure-app",
        [
            {"objectName": "db-password", "objectType": "secret", "filePermission": "0400"},
            {"objectName": "shop-tls", "objectType": "secret", "objectAlias": "tls/tls.pem"},
            {"objectName": "shop-tls", "objectType": "cert", "objectAlias": "tls/tls.crt"},
        ],
    )
    await publish(node, azure, "azure-app")
    target = Path(node.target())
    assert (target / "db-password").read_bytes() == b"s3cret"
    assert stat.S_IMODE(os.stat(target / "db-password").st_mode) == 0o400
    assert (
        target / "tls" / "tls.pem"
    ).read_bytes() == c.leaf.key_pem + c.leaf.pem + c.intermediate.pem + c.root.pem
    assert (target / "tls" / "tls.crt").read_bytes() == c.leaf.pem
    if is_root():
        assert mounts_under(str(target)) == [str(target)]
    # The client ID came from the ServiceAccount manifest's annotation.
    assert azure.entra.sign_ins == [("client_assertion", WI_CLIENT)]
    record = next(iter(node.agent.table))
    assert {v.id for v in record.versions} == {
        "secret/db-password",
        "secret/shop-tls",
        "cert/shop-tls",
    }


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        (
            {"objectName": "db-password", "objectType": "secret", "objectAlias": "../../escape"},
            "objects[0].objectAlias",
        ),
        ({"objectName": "db-password", "objectType": "certificate"}, "objects[0].objectType"),
        (
            {"objectName": "db-password", "objectType": "secret", "objectVersion": "2"},
            "objects[0].objectVersion",
        ),
    ],
)
async def test_bad_input_is_refused_naming_the_field_and_nothing_is_mounted(
    node: Node, azure: AzureWorld, obj: dict[str, object], field: str
) -> None:
    azure.vault.add_secret("db-password", "s3cret")
    node.write_spc("azure-bad", [obj])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await publish(node, azure, "azure-bad")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (caught.value.details() or "")
    target = node.target()
    assert not os.path.exists(target) or os.listdir(target) == []
    assert mounts_under(target) == []
    assert azure.keyvault.requests == []


async def test_missing_secret_fails_the_publish_and_leaves_nothing(
    node: Node, azure: AzureWorld
) -> None:
    node.write_spc("azure-missing", [{"objectName": "nope", "objectType": "secret"}])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await publish(node, azure, "azure-missing")
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "objectName:nope" in (caught.value.details() or "") and "SecretNotFound" in (
        caught.value.details() or ""
    )
    assert mounts_under(node.target()) == []


async def test_no_secret_token_or_client_secret_reaches_the_logs(
    node: Node, azure: AzureWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    value = "log-probe-secret-value-0123456789"
    azure.vault.add_secret("db-password", value)
    node.write_spc("azure-app", [{"objectName": "db-password", "objectType": "secret"}])
    pod_token = azure.pod_token()
    request = publish_request(
        node.target(), spc="azure-app", pod=POD, namespace=NAMESPACE,
        service_account=SERVICE_ACCOUNT, tokens={EXCHANGE_AUDIENCE: pod_token},
    )  # fmt: skip
    await node.kubelet.publish(request)
    node.write_spc("azure-bad", [{"objectName": "nope", "objectType": "secret"}])
    with pytest.raises(grpc.aio.AioRpcError):
        await publish(node, azure, "azure-bad", volume="other")
    output = capsys.readouterr()
    logged = output.out + output.err
    assert "azure.mount.completed" in logged and "node_publish.failed" in logged
    access_tokens = list(azure.entra.tokens)
    for secret in (value, pod_token, *access_tokens):
        assert secret not in logged


# Shaped like the upstream provider's certificate example (examples/keyvault-certs): no
# cloudName (the agent's --azure-cloud-name decides), the deprecated tenantId spelling, quoted
# empty strings, the three identity switches off, comments inside the embedded YAML strings,
# and a service principal from the node-publish secret.
UPSTREAM_SHAPED_SPC = """\
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: azure-certs
  namespace: {namespace}
spec:
  provider: azure
  parameters:
    usePodIdentity: "false"
    useVMManagedIdentity: "false"
    userAssignedIdentityID: ""
    keyvaultName: "{vault}"
    objects: |
      array:
        - |
          objectName: web-tls
          objectType: cert          # the leaf certificate alone
          objectVersion: ""
        - |
          objectName: web-tls
          objectAlias: web-tls-pub-key
          objectType: key           # the certificate's public key
          objectVersion: ""
        - |
          objectName: web-tls
          objectAlias: web-tls-secret
          objectType: secret        # private key and chain in one PEM file
          objectVersion: ""
        - |
          objectName: web-tls
          objectAlias: web-tls.pfx.b64
          objectType: secret
          objectFormat: pfx         # the PFX as Key Vault stores it (base64)
        - |
          objectName: web-tls
          objectAlias: web-tls.pfx
          objectType: secret
          objectFormat: pfx
          objectEncoding: base64    # the binary PFX
    tenantId: "{tenant}"
"""


async def test_an_spc_shaped_like_upstreams_certificate_example_mounts_unchanged(
    azure: AzureWorld, agent_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Expected bytes follow Azure/secrets-store-csi-driver-provider-azure v1.8
    pkg/provider/provider.go: getCertificate (pem.EncodeToMemory of ``cer``), getKey
    (x509.MarshalPKIXPublicKey of the JWK), getSecret + decodePKCS12 (PKCS#8 keys, then the
    certificates reordered by fetchCertChains) and getContentBytes (base64 decoding)."""
    c = chain("web.example.com")
    stored = pfx(c.leaf.key, c.leaf.certificate, [c.root.certificate, c.intermediate.certificate])
    stored_b64 = base64.b64encode(stored).decode()
    azure.vault.add_certificate(
        "web-tls", der=c.leaf.der, secret_value=stored_b64, content_type=CONTENT_TYPE_PFX
    )
    async with running_node(
        azure, agent_root, monkeypatch, azure_cloud_name="AzureStackCloud"
    ) as node:
        text = UPSTREAM_SHAPED_SPC.format(namespace=NAMESPACE, vault=VAULT, tenant=TENANT)
        (node.root / "spc" / "azure-certs.yaml").write_text(text)
        request = publish_request(
            node.target(),
            spc="azure-certs",
            pod=POD,
            namespace=NAMESPACE,
            service_account=SERVICE_ACCOUNT,
            secrets={"clientid": SP_CLIENT, "clientsecret": SP_SECRET},
        )
        await node.kubelet.publish(request)
        target = Path(node.target())
        public_pem = c.leaf.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert (target / "web-tls").read_bytes() == c.leaf.pem
        assert (target / "web-tls-pub-key").read_bytes() == public_pem
        assert (target / "web-tls-secret").read_bytes() == (
            c.leaf.key_pem + c.leaf.pem + c.intermediate.pem + c.root.pem
        )
        assert (target / "web-tls.pfx.b64").read_bytes() == stored_b64.encode()
        assert (target / "web-tls.pfx").read_bytes() == stored
    assert azure.entra.sign_ins == [("client_secret", SP_CLIENT)]
