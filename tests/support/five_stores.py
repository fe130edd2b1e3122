"""One pod, five secret stores: Vault (OpenBao), AWS (moto), Azure Key Vault, GCP Secret Manager
(the in-repo fakes) and an upstream provider plugin (grpcio), each with its own identity.

The pod ``team-a/web-0`` (service account ``web``) has one CSI volume per store. Its
ServiceAccount manifest carries the cloud identities as the clusters would annotate it: the IRSA
role (``eks.amazonaws.com/role-arn``), the Azure workload identity client ID
(``azure.workload.identity/client-id``) and the Google service account to impersonate
(``iam.gke.io/gcp-service-account``); Vault logs in with a JWT role bound to the same service
account. Kubelet hands every volume the same projected tokens (one per audience the CSIDriver
requests), so each provider has to pick its own; the plugin's volume also has a node-publish
secret, which only it may see.

Every HTTP backend is watched by a :class:`~tests.support.wiretap.Wiretap` (for OpenBao and moto,
through a relay in front of them): what each received can be searched for another store's token
or secret, and its gate holds the store's answers to make it the slow one. The plugin has a gate
of its own. Used by the end-to-end test and by ``bench/five_providers_bench.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import tempfile
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from agent._proto.csi import v1 as csi
from tests.conftest import SPC_YAML
from tests.fakes.aws_fault_proxy import FaultProxy
from tests.fakes.aws_identity import FakeAwsIdentity
from tests.fakes.azure_entra import EXCHANGE_AUDIENCE
from tests.fakes.gcp import serve
from tests.support.aws import IRSA, ROLE_ARN
from tests.support.azure import TENANT, VAULT, WI_CLIENT, AzureWorld, azure_world, objects_parameter
from tests.support.gcp import POOL, PROJECT, GcpWorld, new_cloud
from tests.support.jwt_signer import JwtSigner
from tests.support.kubelet import publish_request
from tests.support.moto import MotoServer, unique
from tests.support.openbao import OpenBaoServer, VaultWorld, build_world
from tests.support.pki import ServerTLS
from tests.support.plugin_server import FakePlugin
from tests.support.relay import HttpRelay
from tests.support.wiretap import Gate, Wiretap

NAMESPACE, SERVICE_ACCOUNT, POD = "team-a", "web", "web-0"
GSA = "web@proj-a.iam.gserviceaccount.com"
PLUGIN = "e2e-provider"
STORES = ("vault", "aws", "azure", "gcp", "plugin")
# The audience of the pod token each store's provider must use (the plugin gets them all, as
# upstream's driver hands a plugin every token in the volume attributes).
AUDIENCES = {"vault": "vault", "aws": IRSA, "azure": EXCHANGE_AUDIENCE, "gcp": POOL}
FILE = "password"  # every volume holds one file of this name

SERVICE_ACCOUNT_YAML = f"""\
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {SERVICE_ACCOUNT}
  namespace: {NAMESPACE}
  annotations:
    eks.amazonaws.com/role-arn: {ROLE_ARN}
    azure.workload.identity/client-id: {WI_CLIENT}
    iam.gke.io/gcp-service-account: {GSA}
"""


@dataclass
class FiveStores:
    signer: JwtSigner
    vault: VaultWorld
    azure: AzureWorld
    gcp: GcpWorld
    aws_identity: FakeAwsIdentity
    aws_secrets: FaultProxy  # in front of moto: records which access key signed each call
    plugin: FakePlugin
    plugin_dir: str
    taps: dict[str, Wiretap]  # per HTTP store
    parameters: dict[str, dict[str, str]]  # per store: its SecretProviderClass parameters
    values: dict[str, bytes]  # per store: the content of its volume's file
    tokens: dict[str, str] = field(default_factory=dict)  # audience -> the pod's token
    node_publish: dict[str, str] = field(default_factory=dict)  # the plugin volume's secret
    aws_env: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        """The agent's environment, as an operator points it at these stores."""
        return {**self.azure.env, **self.gcp.env, **self.aws_env}

    def provider(self, store: str) -> str:
        return PLUGIN if store == "plugin" else store

    def spc(self, store: str) -> str:
        return f"{store}-secrets"

    def gate(self, store: str) -> Gate:
        return self.plugin.gate if store == "plugin" else self.taps[store].gate

    def manifests(self) -> str:
        """The ServiceAccount and the five SecretProviderClasses, as one multi-document file."""
        documents = [SERVICE_ACCOUNT_YAML]
        for store in STORES:
            body = "\n".join(
                f"    {key}: |\n{textwrap.indent(value, ' ' * 6)}"
                if "\n" in value
                else f"    {key}: {json.dumps(value)}"
                for key, value in self.parameters[store].items()
            )
            documents.append(
                SPC_YAML.format(
                    name=self.spc(store),
                    namespace=NAMESPACE,
                    provider=self.provider(store),
                    parameters=body,
                )
            )
        return "---\n".join(documents)

    def publish(self, store: str, target: str, pod_uid: str) -> csi.NodePublishVolumeRequest:
        """Kubelet's NodePublishVolume for the pod's volume of ``store``: every token, and the
        node-publish secret only on the plugin's volume."""
        return publish_request(
            target,
            spc=self.spc(store),
            pod=POD,
            namespace=NAMESPACE,
            uid=pod_uid,
            service_account=SERVICE_ACCOUNT,
            tokens=self.tokens,
            secrets=self.node_publish if store == "plugin" else None,
            volume_id=f"csi-{store}",
        )

    def received(self, store: str, text: str) -> bool:
        """True when ``text`` reached ``store``'s backend in any request."""
        if store == "plugin":
            return any(text in r.attributes or text in r.secrets for r in self.plugin.requests)
        return self.taps[store].carried(text)

    def foreign_credentials(self, store: str) -> list[str]:
        """The pod's tokens for the other stores' audiences, and (but to the plugin) the plugin
        volume's node-publish secret: what ``store`` must never receive."""
        own = AUDIENCES.get(store)
        found = [token for audience, token in self.tokens.items() if audience != own]
        if store == "plugin":
            return []  # upstream hands a plugin every token of the volume (see AUDIENCES)
        return found + list(self.node_publish.values())

    def secret_values(self) -> list[bytes]:
        return list(self.values.values())


def _vault(world: VaultWorld, relay: HttpRelay, value: bytes) -> dict[str, str]:
    world.admin.kv_put(world.kv2, "team-a/db", {FILE: value.decode()}, version=2)
    objects = f"- {{objectName: {FILE}, secretPath: {world.kv2}/data/team-a/db, secretKey: {FILE}}}"
    return {
        "vaultAddress": relay.address,
        "roleName": world.role,
        "vaultAuthMountPath": world.jwt_mount,
        "objects": objects + "\n",
    }


def _aws(moto: MotoServer, value: bytes) -> dict[str, str]:
    name = unique("five")
    moto.client("secretsmanager").create_secret(Name=name, SecretString=value.decode())
    objects = f"- {{objectName: {name}, objectType: secretsmanager, objectAlias: {FILE}}}\n"
    return {"objects": objects}


def _azure(world: AzureWorld, value: bytes) -> dict[str, str]:
    world.vault.add_secret("db-password", value.decode())
    objects = [{"objectName": "db-password", "objectType": "secret", "objectAlias": FILE}]
    return {
        "keyvaultName": VAULT,
        "tenantID": TENANT,
        "cloudName": "AzureStackCloud",
        "objects": objects_parameter(objects),
    }


def _gcp(world: GcpWorld, value: bytes) -> dict[str, str]:
    state = world.cloud.state
    state.add_secret_version(PROJECT, "db-password", value)
    for entry in state.secrets.values():
        entry.readers.add(f"serviceAccount:{GSA}")
    state.token_creators[GSA] = {world.cloud.ksa_principal(NAMESPACE, SERVICE_ACCOUNT)}
    resource = f"projects/{PROJECT}/secrets/db-password/versions/latest"
    return {"secrets": f"- resourceName: {resource}\n  path: {FILE}\n"}


def _plugin_parameters() -> dict[str, str]:
    return {"objects": objects_parameter([{"objectName": FILE, "objectVersion": "v1"}])}


@contextlib.asynccontextmanager
async def five_stores(
    *,
    openbao: OpenBaoServer,
    moto: MotoServer,
    signer: JwtSigner,
    azure_tls: ServerTLS,
    directory: Path,
) -> AsyncIterator[FiveStores]:
    """All five stores serving, each holding the pod's secret, their taps recording; the
    plugin's socket is in ``FiveStores.plugin_dir`` (the agent's ``--provider-volume``)."""
    taps = {store: Wiretap() for store in STORES if store != "plugin"}
    values = {store: f"{store}-value-{secrets.token_hex(8)}".encode() for store in STORES}
    async with contextlib.AsyncExitStack() as stack:
        # Short: a unix socket path must fit in 108 bytes.
        plugin_dir = tempfile.mkdtemp(prefix="plugins-", dir="/tmp")
        stack.callback(shutil.rmtree, plugin_dir, ignore_errors=True)
        relay = HttpRelay(openbao.address, middlewares=[taps["vault"].middleware])
        await relay.start()
        stack.push_async_callback(relay.stop)
        vault = build_world(openbao, signer, service_account=SERVICE_ACCOUNT)
        identity = FakeAwsIdentity(signer, middlewares=[taps["aws"].middleware])
        identity.trust[ROLE_ARN] = f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"
        await identity.start()
        stack.push_async_callback(identity.stop)
        proxy = FaultProxy(moto.address, middlewares=[taps["aws"].middleware])
        await proxy.start()
        stack.push_async_callback(proxy.stop)
        azure = await stack.enter_async_context(
            azure_world(azure_tls, signer, directory, middlewares=[taps["azure"].middleware])
        )
        cloud = await stack.enter_async_context(
            serve(new_cloud(signer), middlewares=[taps["gcp"].middleware])
        )
        gcp = GcpWorld(cloud, signer)
        plugin = FakePlugin(os.path.join(plugin_dir, f"{PLUGIN}.sock"))
        await plugin.start()
        stack.push_async_callback(plugin.stop)
        values["plugin"] = f"{FILE}:v1".encode()  # what the fake plugin answers
        world = FiveStores(
            signer=signer,
            vault=vault,
            azure=azure,
            gcp=gcp,
            aws_identity=identity,
            aws_secrets=proxy,
            plugin=plugin,
            plugin_dir=plugin_dir,
            taps=taps,
            parameters={
                "vault": _vault(vault, relay, values["vault"]),
                "aws": _aws(moto, values["aws"]),
                "azure": _azure(azure, values["azure"]),
                "gcp": _gcp(gcp, values["gcp"]),
                "plugin": _plugin_parameters(),
            },
            values=values,
            tokens={
                audience: signer.sign(
                    namespace=NAMESPACE,
                    service_account=SERVICE_ACCOUNT,
                    audience=audience,
                    pod_name=POD,
                    ttl=3600,
                )
                for audience in AUDIENCES.values()
            },
            node_publish={"plugin-key": f"plugin-credential-{secrets.token_hex(8)}"},
            aws_env={
                "AWS_REGION": "us-east-1",
                "AWS_ENDPOINT_URL_STS": identity.address,
                "AWS_ENDPOINT_URL_SECRETS_MANAGER": proxy.address,
                "AWS_ENDPOINT_URL_SSM": proxy.address,
            },
        )
        yield world
