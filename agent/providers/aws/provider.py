"""The in-process AWS provider (``provider: aws``): one volume's objects in, files and versions out.

Mounts every SecretProviderClass written for aws/secrets-store-csi-driver-provider-aws (ASCP)
unchanged: same parameters, validation, file names and object versions. Differences, all on
purpose: everything is validated before any request; credentials are cached per pod until
shortly before they expire (ASCP logs in on every mount); the failover region is asked only
when the primary fails as a region; the node's region is never looked up through the
Kubernetes API (``region`` or ``AWS_REGION`` must say it).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping

import structlog

from agent.errors import ProviderTimeout
from agent.model import MountResult, ProviderRequest
from agent.ports import ServiceAccountSource
from agent.providers.aws.config import parse_config
from agent.providers.aws.content import mount_result
from agent.providers.aws.endpoints import AwsEnvironment
from agent.providers.aws.fetch import Fetcher
from agent.providers.aws.identity import IdentityResolver
from agent.providers.aws.transport import AwsTransport, RetryPolicy, Timeouts

log = structlog.get_logger(__name__)

DEFAULT_TIMEOUT_S = 90.0


class AwsProvider:
    """Implements :class:`agent.ports.Provider` for ``provider: aws``.

    ``env`` is the AWS SDK environment (default: the agent's own): ``AWS_REGION``,
    ``AWS_ENDPOINT_URL`` and its per-service forms, ``AWS_CA_BUNDLE``, FIPS and dual-stack.
    Credentials are never read from it: each pod authenticates with its own token.
    """

    def __init__(
        self,
        name: str = "aws",
        *,
        service_accounts: ServiceAccountSource | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        pod_identity_endpoint: str = "",
        pod_identity_timeout: float = 5.0,
        retry: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
    ) -> None:
        self.name = name
        self._env = dict(os.environ if env is None else env)
        self._timeout = timeout
        self.transport = AwsTransport(
            AwsEnvironment.from_env(self._env), retry=retry, timeouts=timeouts
        )
        self.identities = IdentityResolver(
            self.transport,
            service_accounts,
            pod_identity_endpoint=pod_identity_endpoint,
            pod_identity_timeout=pod_identity_timeout,
        )
        self._fetcher = Fetcher(self.transport)

    async def close(self) -> None:
        await self.transport.close()

    async def mount(self, request: ProviderRequest) -> MountResult:
        started = time.monotonic()
        config = parse_config(request.attributes, self._env)
        for warning in config.warnings:
            log.warning("aws.config_warning", provider=self.name, warning=warning)
        pod = request.identity
        try:
            async with asyncio.timeout(self._timeout):
                credentials = await self.identities.credentials(config, pod)
                fetched = await self._fetcher.fetch_all(config.objects, config.regions, credentials)
        except TimeoutError:
            regions = " and ".join(config.regions)
            raise ProviderTimeout(
                f"AWS ({regions}) did not answer within {self._timeout:g}s"
            ) from None
        result = mount_result(fetched, request.default_mode)
        log.info(
            "aws.mount.completed",
            provider=self.name,
            namespace=pod.namespace,
            pod=pod.name,
            service_account=pod.service_account,
            method="pod-identity" if config.use_pod_identity else "irsa",
            regions=list(config.regions),
            objects=len(config.objects),
            files=len(result.files),
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )
        return result
