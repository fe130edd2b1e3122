"""The operator's Azure settings (the agent's environment) and the cloud each volume uses.

Read once, when the provider is built:

- ``AZURE_ENVIRONMENT_FILEPATH``: the go-autorest environment file for ``cloudName:
  AzureStackCloud`` (a SecretProviderClass may name its own with ``cloudEnvFileName``, read
  only inside ``--trusted-file-dirs``, since the agent, unlike upstream's container, sees the
  whole node).
- ``AZURE_AUTHORITY_HOST``: when set, the Entra authority for every cloud (private link,
  sovereign or test endpoints); otherwise each cloud's own.
- ``AZURE_POD_IDENTITY_AUTHORITY_HOST``: the instance metadata service for managed identity,
  as the Azure SDKs read it (default ``http://169.254.169.254``).
- ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``: trust store (transport.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from agent.aio.threads import run_blocking
from agent.errors import ConfigError, InvalidSecretProviderClass
from agent.providers.azure.clouds import (
    ENVIRONMENT_FILE_VARIABLE,
    MAX_ENVIRONMENT_FILE_BYTES,
    Cloud,
    cloud_from_file,
    is_stack_cloud,
    named_cloud,
    normalise_authority,
)
from agent.providers.common.trusted import TrustedDirs

AUTHORITY_HOST_VARIABLE = "AZURE_AUTHORITY_HOST"
IMDS_HOST_VARIABLE = "AZURE_POD_IDENTITY_AUTHORITY_HOST"
DEFAULT_IMDS = "http://169.254.169.254"
DEFAULT_CLOUD = "AzurePublicCloud"


@dataclass(frozen=True, slots=True)
class AzureEnvironment:
    default_cloud: str
    environment_file: str  # AZURE_ENVIRONMENT_FILEPATH, "" when unset
    authority_host: str  # AZURE_AUTHORITY_HOST normalised, "" when unset
    imds_endpoint: str


def read_environment(
    env: Mapping[str, str], default_cloud: str = DEFAULT_CLOUD
) -> AzureEnvironment:
    """The settings above from ``env``; ConfigError naming the variable when one is unusable."""
    authority = env.get(AUTHORITY_HOST_VARIABLE, "").strip()
    if authority:
        try:
            authority = normalise_authority(authority, AUTHORITY_HOST_VARIABLE)
        except InvalidSecretProviderClass as err:
            raise ConfigError(err.message) from None
    imds = env.get(IMDS_HOST_VARIABLE, "").strip().rstrip("/") or DEFAULT_IMDS
    parts = urlsplit(imds)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{IMDS_HOST_VARIABLE}: must be an http(s) URL such as {DEFAULT_IMDS}")
    if not is_stack_cloud(default_cloud):
        try:
            named_cloud(default_cloud)
        except InvalidSecretProviderClass as err:
            raise ConfigError(f"default Azure cloud: {err.message}") from None
    return AzureEnvironment(
        default_cloud=default_cloud,
        environment_file=env.get(ENVIRONMENT_FILE_VARIABLE, "").strip(),
        authority_host=authority,
        imds_endpoint=imds,
    )


class CloudResolver:
    """The cloud each volume uses: ``cloudName`` (or the default), a custom one read from its
    environment file off the event loop, with ``AZURE_AUTHORITY_HOST`` applied.

    A custom cloud file is kept for ``ttl`` seconds, so publishes do not read it every time
    while a ConfigMap update still takes effect within that. Failures are not kept.
    """

    def __init__(
        self,
        environment: AzureEnvironment,
        trusted: TrustedDirs,
        *,
        clock: Callable[[], float] = time.monotonic,
        ttl: float = 60.0,
    ) -> None:
        self.environment = environment
        self._trusted = trusted
        self._clock = clock
        self._ttl = ttl
        self._files: dict[tuple[str, str], tuple[float, Cloud]] = {}

    async def resolve(self, cloud_name: str, cloud_env_file: str) -> Cloud:
        environment = self.environment
        name = cloud_name or environment.default_cloud
        if not is_stack_cloud(name):
            cloud = named_cloud(name)
        elif cloud_env_file:
            cloud = await self._from_file("cloudEnvFileName", cloud_env_file)
        elif environment.environment_file:
            cloud = await self._from_file(ENVIRONMENT_FILE_VARIABLE, environment.environment_file)
        else:
            raise InvalidSecretProviderClass(
                f"cloudName: {name} needs a cloud environment file: set cloudEnvFileName, or "
                f"the agent's {ENVIRONMENT_FILE_VARIABLE}"
            )
        if environment.authority_host:
            cloud = replace(cloud, authority=environment.authority_host)
        if not cloud.authority:
            raise InvalidSecretProviderClass(
                "cloudName: the cloud environment file has no activeDirectoryEndpoint and "
                f"{AUTHORITY_HOST_VARIABLE} is not set"
            )
        return cloud

    async def _from_file(self, setting: str, path: str) -> Cloud:
        kept = self._files.get((setting, path))
        now = self._clock()
        if kept is not None and kept[0] > now:
            return kept[1]
        if setting == ENVIRONMENT_FILE_VARIABLE:
            data = await run_blocking(_read_operator_file, path)
        else:
            data = await run_blocking(_read_trusted_file, self._trusted, path)
        cloud = cloud_from_file(data, setting)
        if len(self._files) > 100:  # paths come from SecretProviderClasses: keep it bounded
            self._files.clear()
        self._files[(setting, path)] = (now + self._ttl, cloud)
        return cloud


def _read_trusted_file(trusted: TrustedDirs, path: str) -> bytes:
    try:
        return trusted.read_file("cloudEnvFileName", path, MAX_ENVIRONMENT_FILE_BYTES)
    except OSError as err:
        raise InvalidSecretProviderClass(
            f"cloudEnvFileName: cannot read {path!r}: {err.strerror or err}"
        ) from None


def _read_operator_file(path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_ENVIRONMENT_FILE_BYTES + 1)
    except OSError as err:
        raise InvalidSecretProviderClass(
            f"{ENVIRONMENT_FILE_VARIABLE}: cannot read {path!r}: {err.strerror}"
        ) from None
    if len(data) > MAX_ENVIRONMENT_FILE_BYTES:
        raise InvalidSecretProviderClass(
            f"{ENVIRONMENT_FILE_VARIABLE}: {path!r} is larger than "
            f"{MAX_ENVIRONMENT_FILE_BYTES} bytes"
        )
    return data
