"""A GKE-like world for GCP provider tests: the fake Google Cloud, a cluster whose
service-account tokens it trusts, the environment the agent would run with, and pods."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest

from agent.errors import ServiceAccountNotFound
from agent.model import PodIdentity, ProviderRequest, ServiceAccountToken
from agent.providers.gcp import GcpProvider
from tests.fakes.gcp import FakeGoogleCloud, StsConfig, serve
from tests.support.jwt_signer import JwtSigner

PROJECT = "proj-a"
CLUSTER = "c1"
LOCATION = "us-central1"
POOL = f"{PROJECT}.svc.id.goog"
IDENTITY_PROVIDER = f"https://container.googleapis.com/v1/projects/{PROJECT}/locations/{LOCATION}/clusters/{CLUSTER}"
AUDIENCE = f"identitynamespace:{POOL}:{IDENTITY_PROVIDER}"


class StaticServiceAccounts:
    """ports.ServiceAccountSource over a dict: (namespace, name) -> annotations."""

    def __init__(self) -> None:
        self.accounts: dict[tuple[str, str], dict[str, str]] = {}
        self.lookups = 0

    def add(self, namespace: str, name: str, **annotations: str) -> None:
        self.accounts[(namespace, name)] = dict(annotations)

    async def annotations(self, namespace: str, name: str) -> Mapping[str, str]:
        self.lookups += 1
        try:
            return self.accounts[(namespace, name)]
        except KeyError:
            raise ServiceAccountNotFound(f"service account {namespace}/{name} not found") from None


@dataclass
class GcpWorld:
    cloud: FakeGoogleCloud
    signer: JwtSigner
    accounts: StaticServiceAccounts = field(default_factory=StaticServiceAccounts)
    providers: list[GcpProvider] = field(default_factory=list)  # closed by the fixture

    @property
    def env(self) -> dict[str, str]:
        """The agent's environment: upstream's variables plus the endpoint settings."""
        url = self.cloud.url
        host = urlsplit(url).netloc
        return {
            "PROJECT": PROJECT,
            "CLUSTER_NAME": CLUSTER,
            "CLUSTER_LOCATION": LOCATION,
            "GAIA_TOKEN_EXCHANGE_ENDPOINT": f"{url}/v1/identitybindingtoken",
            "GCP_SECRET_MANAGER_ENDPOINT": url,
            "GCP_SECRET_MANAGER_REGIONAL_ENDPOINT": f"{url}/regional/{{location}}",
            "GCP_PARAMETER_MANAGER_ENDPOINT": url,
            "GCP_PARAMETER_MANAGER_REGIONAL_ENDPOINT": f"{url}/regional/{{location}}",
            "GCP_IAM_CREDENTIALS_ENDPOINT": url,
            # Never the real metadata address from a test (google-auth reads both).
            "GCE_METADATA_HOST": host,
            "GCE_METADATA_IP": host,
        }

    def provider(self, env: Mapping[str, str] | None = None, **kwargs: Any) -> GcpProvider:
        provider = GcpProvider(
            timeout=10.0,
            service_accounts=self.accounts,
            env=self.env | dict(env or {}),
            **kwargs,
        )
        self.providers.append(provider)
        return provider

    def pod_token(
        self, namespace: str = "team-a", account: str = "web", audience: str = POOL
    ) -> str:
        return self.signer.sign(namespace=namespace, service_account=account, audience=audience)

    def grant(
        self, project: str, secret: str, namespace: str = "team-a", account: str = "web"
    ) -> None:
        number = self.cloud.state.project_number(project)
        for (num, _, name), entry in self.cloud.state.secrets.items():
            if num == number and name == secret:
                entry.readers.add(self.cloud.ksa_principal(namespace, account))

    def request(
        self,
        secrets: str | Sequence[Mapping[str, object]],
        *,
        namespace: str = "team-a",
        account: str = "web",
        tokens: Mapping[str, str] | None = None,
        node_publish: Mapping[str, str] | None = None,
        default_mode: int = 0o644,
        **attributes: str,
    ) -> ProviderRequest:
        text = secrets if isinstance(secrets, str) else json.dumps(list(secrets))
        if tokens is None:
            tokens = {POOL: self.pod_token(namespace, account)}
        identity = PodIdentity(
            namespace=namespace,
            name="web-0",
            uid="uid-1",
            service_account=account,
            tokens={aud: ServiceAccountToken(tok) for aud, tok in tokens.items()},
        )
        return ProviderRequest(
            attributes={"secrets": text, **attributes},
            secrets=dict(node_publish or {}),
            identity=identity,
            target_path="/tmp/target",
            default_mode=default_mode,
        )


def new_cloud(signer: JwtSigner) -> FakeGoogleCloud:
    cloud = FakeGoogleCloud(
        sts=StsConfig(
            audience=AUDIENCE,
            token_audiences=frozenset({POOL}),
            issuer=signer.issuer,
            public_key=signer.key.public_key(),
            pool=POOL,
        )
    )
    cloud.state.project_numbers[PROJECT] = "123456789"
    return cloud


@pytest.fixture
async def gcp(jwt_signer: JwtSigner) -> AsyncIterator[GcpWorld]:
    async with serve(new_cloud(jwt_signer)) as cloud:
        world = GcpWorld(cloud, jwt_signer)
        world.accounts.add("team-a", "web")  # a pod's service account, no annotations
        try:
            yield world
        finally:
            for provider in world.providers:
                await provider.close()
