"""The in-process Azure Key Vault provider: one volume's objects in, files and versions out."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping, Sequence

import structlog

from agent.aio.threads import run_blocking
from agent.model import MountResult, ObjectVersion, ProviderRequest, SecretFile
from agent.ports import ServiceAccountSource
from agent.providers.azure.clouds import Cloud
from agent.providers.azure.config import AzureConfig, objects_from, objects_text, parse_config
from agent.providers.azure.content import Piece, needs_conversion, object_pieces
from agent.providers.azure.environment import DEFAULT_CLOUD, CloudResolver, read_environment
from agent.providers.azure.fetch import Fetched, fetch_volume
from agent.providers.azure.identity import (
    CLIENT_ID_ANNOTATION,
    WORKLOAD_IDENTITY_AUDIENCE,
    ClientCredential,
    Credential,
    ManagedIdentity,
    missing_token_error,
    no_identity_error,
    node_publish_client,
)
from agent.providers.azure.keyvault import ChallengeCache, KeyVaultClient
from agent.providers.azure.tokens import TokenSource
from agent.providers.azure.transport import Sleep, Transport
from agent.providers.common.deadline import deadline
from agent.providers.common.parsed import parsed
from agent.providers.common.trusted import TrustedDirs

log = structlog.get_logger(__name__)
DEFAULT_TIMEOUT_S = 30.0


class AzureProvider:
    """Implements :class:`agent.ports.Provider` for ``provider: azure``.

    ``env`` (default ``os.environ``) supplies the operator settings of environment.py and the
    trust store; ``trusted_dirs`` are where ``cloudEnvFileName`` may point;
    ``service_accounts`` supplies the client-id annotation. ``construct_pem_chain`` and
    ``write_cert_and_key_in_separate_files`` are upstream's flags of the same names.
    """

    files_only = True  # returns every file, never writes into the target (ports.Provider)

    def __init__(
        self,
        name: str = "azure",
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        env: Mapping[str, str] | None = None,
        trusted_dirs: Sequence[str] = (),
        service_accounts: ServiceAccountSource | None = None,
        default_cloud: str = DEFAULT_CLOUD,
        construct_pem_chain: bool = True,
        write_cert_and_key_in_separate_files: bool = False,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        environ = os.environ if env is None else env
        self.name = name
        self._clouds = CloudResolver(
            read_environment(environ, default_cloud), TrustedDirs(trusted_dirs), clock=clock
        )
        self._service_accounts = service_accounts
        self._timeout = timeout
        self._construct_chain = construct_pem_chain
        self._separate_files = write_cert_and_key_in_separate_files
        self.transport = Transport(timeout=timeout, env=environ, sleep=sleep)
        self.tokens = TokenSource(self.transport, clock=clock)
        self._challenges = ChallengeCache()

    async def close(self) -> None:
        await self.transport.close()

    def settings(self) -> tuple[str, bool, bool]:
        """(default cloud, construct PEM chain, separate certificate and key files)."""
        default_cloud = self._clouds.environment.default_cloud
        return (default_cloud, self._construct_chain, self._separate_files)

    async def mount(self, request: ProviderRequest) -> MountResult:
        started = time.monotonic()
        objects = await parsed(objects_from, objects_text(request.attributes))
        config = parse_config(request.attributes, objects)
        cloud = await self._clouds.resolve(config.cloud_name, config.cloud_env_file)
        credential = await self._credential(config, cloud, request)
        client = KeyVaultClient(
            self.transport,
            self.tokens,
            self._challenges,
            vault_url=cloud.vault_url(config.keyvault_name),
            vault_name=config.keyvault_name,
            credential=credential,
        )
        with deadline(self._timeout):
            fetched = await fetch_volume(client, config.objects)
        result = await self._result(fetched, request.default_mode)
        # Debug (-v=1): node_publish.completed says it at -v=0, and rotation calls mount at
        # every poll, where an unchanged volume is silent at -v=0 (rotation.fetched is -v=1).
        log.debug(
            "azure.mount.completed",
            provider=self.name,
            namespace=request.identity.namespace,
            pod=request.identity.name,
            keyvault=config.keyvault_name,
            identity=credential.describe(),
            objects=len(result.versions),
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )
        return result

    async def _credential(
        self, config: AzureConfig, cloud: Cloud, request: ProviderRequest
    ) -> Credential:
        """The identity to sign in as (identity.py gives the order and its reasons)."""
        choice = config.identity
        if choice.use_vm_managed_identity:
            return ManagedIdentity(
                self._clouds.environment.imds_endpoint, choice.user_assigned_identity_id
            )
        if choice.client_id:
            return self._workload_identity(config, cloud, request, choice.client_id, "clientID")
        client = node_publish_client(request.secrets)
        if client is not None:
            return ClientCredential(
                "service principal", cloud.authority, config.tenant, client[0], secret=client[1]
            )
        client_id = await self._annotated_client_id(request)
        if not client_id:
            raise no_identity_error(annotation_checked=self._service_accounts is not None)
        source = f"the service account's {CLIENT_ID_ANNOTATION} annotation"
        return self._workload_identity(config, cloud, request, client_id, source)

    def _workload_identity(
        self,
        config: AzureConfig,
        cloud: Cloud,
        request: ProviderRequest,
        client_id: str,
        source: str,
    ) -> ClientCredential:
        token = request.identity.token_for(WORKLOAD_IDENTITY_AUDIENCE)
        if token is None or not token.token:
            raise missing_token_error(source, request.identity.audiences)
        return ClientCredential(
            "workload identity", cloud.authority, config.tenant, client_id, assertion=token.token
        )

    async def _annotated_client_id(self, request: ProviderRequest) -> str:
        identity = request.identity
        if self._service_accounts is None or not identity.service_account:
            return ""
        annotations = await self._service_accounts.annotations(
            identity.namespace, identity.service_account
        )
        return annotations.get(CLIENT_ID_ANNOTATION, "").strip()

    async def _result(self, fetched: list[Fetched], default_mode: int) -> MountResult:
        """Files in fetch order; conversions needing cryptography run in one worker thread."""
        if any(needs_conversion(f.target.obj, f.bundle) for f in fetched):
            pieces = await run_blocking(self._all_pieces, fetched)
        else:
            pieces = self._all_pieces(fetched)
        files: list[SecretFile] = []
        versions: dict[str, ObjectVersion] = {}
        for item, item_pieces in zip(fetched, pieces, strict=True):
            obj = item.target.obj
            mode = default_mode if obj.mode is None else obj.mode
            for piece in item_pieces:
                path = item.target.file_name + piece.suffix
                files.append(SecretFile(path=path, mode=mode, contents=piece.contents))
            uid = item.target.uid
            versions.setdefault(uid, ObjectVersion(id=uid, version=item.version))
        return MountResult(files=tuple(files), versions=tuple(versions.values()))

    def _all_pieces(self, fetched: list[Fetched]) -> list[list[Piece]]:
        return [
            object_pieces(
                f.target.obj,
                f.bundle,
                construct_chain=self._construct_chain,
                separate_files=self._separate_files,
            )
            for f in fetched
        ]
