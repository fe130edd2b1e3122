"""The in-process Vault / OpenBao provider: one volume's objects in, files and versions out."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Literal

import structlog

from agent.aio.threads import run_blocking
from agent.config import DEFAULT_MAX_PAYLOAD_BYTES
from agent.errors import ProviderError, ProviderUnavailable
from agent.model import MountResult, ProviderRequest, SecretFile
from agent.providers.common.failures import first_error
from agent.providers.common.parameters import ConfigWarnings, require_parameter
from agent.providers.common.parsed import parsed
from agent.providers.common.trusted import TrustedDirs
from agent.providers.vault.client import DEFAULT_TIMEOUT_S, Login, Token, VaultClient
from agent.providers.vault.config import Defaults, Flavour, VaultConfig, parse_config
from agent.providers.vault.content import object_content, object_version
from agent.providers.vault.nodefiles import NodeFiles, names_node_files, read_node_files
from agent.providers.vault.objects import OBJECTS_SHAPE, ReadKey, parse_objects
from agent.providers.vault.secret import VaultSecret
from agent.providers.vault.tokens import TokenKey, jwt_digest
from agent.providers.vault.transport import Target

log = structlog.get_logger(__name__)

# Reads of one volume run concurrently, but a volume listing hundreds of objects should not
# open hundreds of connections to Vault at once.
_MAX_PARALLEL_READS = 16


class VaultProvider:
    """Implements :class:`agent.ports.Provider` for ``provider: vault`` and ``provider: openbao``.

    Defaults the SecretProviderClass may override come from the constructor, then from the
    environment (``VAULT_ADDR`` / ``BAO_ADDR``, ``VAULT_NAMESPACE`` / ``BAO_NAMESPACE``).
    ``trusted_dirs`` are the absolute directories (agent flag ``--trusted-file-dirs``) in which
    the SecretProviderClass may name TLS files and ``unix://`` sockets; by default none.
    ``max_payload_bytes`` (``--max-payload-size``) bounds each answer read from Vault
    (transport.response_limit).
    """

    files_only = True  # returns every file, never writes into the target (ports.Provider)

    def __init__(
        self,
        name: str = "vault",
        *,
        default_address: str | None = None,
        version_key: bytes,
        timeout: float = DEFAULT_TIMEOUT_S,
        default_namespace: str | None = None,
        default_auth_mount: str = "kubernetes",
        flavour: Literal["vault", "openbao"] | None = None,
        client: VaultClient | None = None,
        env: Mapping[str, str] | None = None,
        trusted_dirs: Sequence[str] = (),
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        self.name = name
        self._config_warnings = ConfigWarnings("vault.config_warning")
        self._trusted = TrustedDirs(trusted_dirs)
        self._flavour: Flavour = flavour or ("openbao" if name == "openbao" else "vault")
        self._defaults = _defaults(
            self._flavour, default_address, default_namespace, default_auth_mount, env
        )
        if not version_key:
            # Versions then change across restarts (content is compared anyway), but they
            # still never reveal the content.
            log.warning("vault.version_key_missing", provider=name)
            version_key = secrets.token_bytes(32)
        self._version_key = version_key
        self._timeout = timeout
        self._client = client or VaultClient(timeout=timeout, max_payload_bytes=max_payload_bytes)

    async def close(self) -> None:
        await self._client.close()

    async def mount(self, request: ProviderRequest) -> MountResult:
        started = time.monotonic()
        text = require_parameter(request.attributes, "objects", OBJECTS_SHAPE)
        objects = await parsed(parse_objects, text)
        config = parse_config(
            request.attributes,
            self._flavour,
            self._defaults,
            trusted=self._trusted,
            objects=objects,
        )
        self._config_warnings.log(self.name, request, config.warnings)
        # The trust check reads the TLS files (and resolves the socket) once, in a worker
        # thread: the bytes read are the bytes used, and the event loop never waits on a disk.
        # Without a node path it reads nothing: no thread hop (a wake-up paid per publish).
        if names_node_files(config):
            files = await run_blocking(read_node_files, config, self._trusted)
        else:
            files = read_node_files(config, self._trusted)
        login = self._login(config, files, request)
        try:
            async with asyncio.timeout(self._timeout):
                token = await self._client.token(login)
                responses = await self._read_all(login, token, config)
        except TimeoutError:
            raise ProviderUnavailable(
                f"Vault at {config.address} did not answer within {self._timeout:g}s"
            ) from None
        result = self._result(config, responses, request.default_mode)
        # Debug (-v=1): node_publish.completed says it at -v=0, and rotation calls mount at
        # every poll, where an unchanged volume is silent at -v=0 (rotation.fetched is -v=1).
        log.debug(
            "vault.mount.completed",
            provider=self.name,
            namespace=request.identity.namespace,
            pod=request.identity.name,
            objects=len(result.files),
            reads=len(responses),
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )
        return result

    def _login(self, config: VaultConfig, files: NodeFiles, request: ProviderRequest) -> Login:
        identity = request.identity
        sa_token = identity.token_for(config.audience)
        if sa_token is None or not sa_token.token:
            have = ", ".join(identity.audiences) or "none"
            raise ProviderError(
                f"no service account token for audience {config.audience!r} (tokens present "
                f"for: {have}); the CSIDriver spec.tokenRequests must list audience "
                f"{config.audience!r}, or set the SecretProviderClass 'audience' parameter"
            )
        socket = config.socket.path if config.socket else ""
        target = Target(config.address, config.namespace, config.tls, socket, files)
        key = TokenKey(
            # A token belongs to the server it came from: for a socket, the one it resolved to.
            address=f"unix://{files.socket}" if files.socket else config.address,
            namespace=config.namespace,
            auth_mount=config.auth_mount,
            role=config.role,
            pod_namespace=identity.namespace,
            service_account=identity.service_account,
            audience=config.audience,
            pod_uid=identity.uid,
            jwt_sha256=jwt_digest(sa_token.token),
        )
        return Login(target, config.auth_mount, config.role, key, jwt=sa_token.token)

    async def _read_all(
        self, login: Login, token: Token, config: VaultConfig
    ) -> dict[ReadKey, VaultSecret]:
        """Read each distinct request once, concurrently; fail on the first error."""
        limit = asyncio.Semaphore(_MAX_PARALLEL_READS)

        async def read(key: ReadKey) -> VaultSecret:
            async with limit:
                return await self._client.read(login, token, key)

        keys = list(dict.fromkeys(obj.read for obj in config.objects))
        try:
            async with asyncio.TaskGroup() as group:
                tasks = {key: group.create_task(read(key)) for key in keys}
        except BaseExceptionGroup as group_error:
            raise first_error(group_error, "Vault") from None
        return {key: task.result() for key, task in tasks.items()}

    def _result(
        self, config: VaultConfig, responses: Mapping[ReadKey, VaultSecret], default_mode: int
    ) -> MountResult:
        files: list[SecretFile] = []
        versions = []
        for obj in config.objects:
            content = object_content(obj, responses[obj.read])
            mode = obj.mode if obj.mode is not None else default_mode
            files.append(SecretFile(path=obj.name, mode=mode, contents=content))
            versions.append(object_version(self._version_key, obj, content))
        return MountResult(files=tuple(files), versions=tuple(versions))


def _defaults(
    flavour: Flavour,
    address: str | None,
    namespace: str | None,
    auth_mount: str,
    env: Mapping[str, str] | None,
) -> Defaults:
    environ = os.environ if env is None else env
    prefixes = ("BAO_", "VAULT_") if flavour == "openbao" else ("VAULT_",)

    def from_env(suffix: str) -> str:
        return next((environ[p + suffix] for p in prefixes if environ.get(p + suffix)), "")

    return Defaults(
        address=address or from_env("ADDR"),
        namespace=namespace if namespace is not None else from_env("NAMESPACE"),
        auth_mount=auth_mount,
        audience=flavour,
    )
