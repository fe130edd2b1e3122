"""An Azure world for tests: the fake Key Vault and Entra over TLS (test CA), IMDS over http,
and the operator settings that point the agent at them the documented way: a custom cloud
(``cloudName: AzureStackCloud`` with an ``AZURE_ENVIRONMENT_FILEPATH`` file giving
``keyVaultDNSSuffix`` and ``activeDirectoryEndpoint``), ``SSL_CERT_FILE`` for the test CA and
``AZURE_POD_IDENTITY_AUTHORITY_HOST`` for IMDS. Host names are ``*.localhost`` (RFC 6761)."""

from __future__ import annotations

import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from agent.model import PodIdentity, ProviderRequest, ServiceAccountToken
from agent.providers.azure import AzureProvider
from tests.fakes.azure_entra import EXCHANGE_AUDIENCE, FakeEntra
from tests.fakes.azure_keyvault import FakeKeyVault
from tests.support.jwt_signer import JwtSigner
from tests.support.pki import ServerTLS, server_tls

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
WI_CLIENT = "11111111-aaaa-4bbb-8ccc-000000000001"
SP_CLIENT = "11111111-aaaa-4bbb-8ccc-000000000002"
SP_SECRET = "sp-secret-value-do-not-log"
MI_CLIENT = "11111111-aaaa-4bbb-8ccc-000000000003"
MI_SYSTEM = "11111111-aaaa-4bbb-8ccc-000000000004"
VAULT = "kv-test"
NAMESPACE, SERVICE_ACCOUNT, POD = "team-a", "web", "web-0"


@dataclass
class Sleeps:
    """Stands in for asyncio.sleep in the provider's retries: records, does not wait."""

    delays: list[float] = field(default_factory=list)

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@dataclass
class AzureWorld:
    keyvault: FakeKeyVault
    entra: FakeEntra
    signer: JwtSigner
    env: dict[str, str]
    env_file: Path
    tls: ServerTLS
    sleeps: Sleeps = field(default_factory=Sleeps)

    @property
    def vault(self) -> Any:
        return self.keyvault.vault(VAULT)

    def provider(self, **kwargs: Any) -> AzureProvider:
        kwargs.setdefault("env", self.env)
        kwargs.setdefault("sleep", self.sleeps)
        kwargs.setdefault("timeout", 10.0)
        return AzureProvider(**kwargs)

    def pod_token(self, audience: str = EXCHANGE_AUDIENCE, **kwargs: Any) -> str:
        kwargs.setdefault("namespace", NAMESPACE)
        kwargs.setdefault("service_account", SERVICE_ACCOUNT)
        return self.signer.sign(audience=audience, pod_name=POD, **kwargs)

    def request(
        self,
        objects: Sequence[Mapping[str, Any] | str],
        *,
        tokens: Mapping[str, str] | None = None,
        secrets: Mapping[str, str] | None = None,
        default_mode: int = 0o644,
        extra: Mapping[str, str] | None = None,
        **parameters: str,
    ) -> ProviderRequest:
        """``extra`` and ``parameters`` are more SPC parameters (``extra``: for a caller that
        holds them in a mapping)."""
        attributes = {
            "keyvaultName": VAULT,
            "tenantID": TENANT,
            "cloudName": "AzureStackCloud",
            "objects": objects_parameter(objects),
        }
        attributes.update(extra or {})
        attributes.update(parameters)
        if tokens is None:
            tokens = {EXCHANGE_AUDIENCE: self.pod_token()}
        identity = PodIdentity(
            namespace=NAMESPACE,
            name=POD,
            uid="pod-uid-1",
            service_account=SERVICE_ACCOUNT,
            tokens={aud: ServiceAccountToken(t) for aud, t in tokens.items()},
        )
        return ProviderRequest(
            attributes=attributes,
            secrets=dict(secrets or {}),
            identity=identity,
            target_path="/unused",
            default_mode=default_mode,
        )


def objects_parameter(objects: Sequence[Mapping[str, Any] | str]) -> str:
    """The ``objects`` parameter as SPC authors write it: an ``array:`` of YAML strings."""
    entries = [
        o if isinstance(o, str) else yaml.safe_dump(dict(o), sort_keys=False) for o in objects
    ]
    return yaml.safe_dump({"array": entries}, sort_keys=False)


async def _serve(
    app: web.Application, context: ssl.SSLContext | None, middlewares: Sequence[Any] = ()
) -> tuple[web.AppRunner, int]:
    app.middlewares.extend(middlewares)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port: int = runner.addresses[0][1]
    return runner, port


@pytest.fixture(scope="session")
def azure_tls(tmp_path_factory: pytest.TempPathFactory) -> ServerTLS:
    names = ("vault.localhost", "*.vault.localhost", "login.localhost")
    return server_tls(tmp_path_factory.mktemp("azure-tls"), names)


@contextlib.asynccontextmanager
async def azure_world(
    tls: ServerTLS, signer: JwtSigner, directory: Path, middlewares: Sequence[Any] = ()
) -> AsyncIterator[AzureWorld]:
    """The fakes listening on loopback ports, identities registered, the vault allowing them;
    ``middlewares`` (e.g. a Wiretap's) go in front of each fake's routes."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.cert_file, tls.key_file)
    entra = FakeEntra(system_identity=MI_SYSTEM, user_identities={MI_CLIENT})
    keyvault = FakeKeyVault(entra, TENANT)
    runners = []
    try:
        entra_runner, entra_port = await _serve(entra.entra_app(), context, middlewares)
        runners.append(entra_runner)
        vault_runner, vault_port = await _serve(keyvault.app(), context, middlewares)
        runners.append(vault_runner)
        imds_runner, imds_port = await _serve(entra.imds_app(), None, middlewares)
        runners.append(imds_runner)
        authority = f"https://login.localhost:{entra_port}/"
        keyvault.authority = authority
        env_file = directory / "azurestackcloud.json"
        cloud = {
            "name": "AzureStackCloud",
            "keyVaultDNSSuffix": f"vault.localhost:{vault_port}",
            "activeDirectoryEndpoint": authority,
            "resourceManagerEndpoint": "https://management.localhost/",
        }
        env_file.write_text(json.dumps(cloud))
        env = {
            "SSL_CERT_FILE": str(tls.ca_file),
            "AZURE_ENVIRONMENT_FILEPATH": str(env_file),
            "AZURE_POD_IDENTITY_AUTHORITY_HOST": f"http://127.0.0.1:{imds_port}",
        }
        entra.register_app(WI_CLIENT, TENANT)
        subject = f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"
        entra.federate(WI_CLIENT, signer.issuer, subject)
        entra.trust_issuer(signer.issuer, signer.public_pem)
        entra.register_app(SP_CLIENT, TENANT, secret=SP_SECRET)
        world = AzureWorld(keyvault, entra, signer, env, env_file, tls)
        for principal in (WI_CLIENT, SP_CLIENT, MI_CLIENT, MI_SYSTEM):
            world.vault.allow(principal)
        yield world
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


@pytest.fixture
async def azure(
    azure_tls: ServerTLS, jwt_signer: JwtSigner, tmp_path: Path
) -> AsyncIterator[AzureWorld]:
    async with azure_world(azure_tls, jwt_signer, tmp_path) as world:
        yield world
