"""The in-process AWS provider (``provider: aws``): one volume's objects in, files and versions out.

Mounts every SecretProviderClass written for aws/secrets-store-csi-driver-provider-aws (ASCP)
unchanged: same parameters, validation, file names and object versions. Differences, all on
purpose: everything is validated before any request; credentials are cached per pod until
shortly before they expire (ASCP logs in on every mount); the failover region is asked only
when the primary fails as a region; the node's region label is read from this agent's own
Node (ASCP reads the pod, then its node), once, and kept.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from dataclasses import replace

import structlog

from agent.documents.names import shown_name
from agent.errors import ProviderTimeout, ProviderUnavailable
from agent.model import MountResult, PodIdentity, ProviderRequest
from agent.ports import NodeLabelSource, ServiceAccountSource
from agent.providers.aws.config import (
    OBJECTS_SHAPE,
    AwsConfig,
    objects_context,
    objects_from,
    parse_settings,
)
from agent.providers.aws.content import mount_result
from agent.providers.aws.endpoints import AwsEnvironment
from agent.providers.aws.fetch import Fetched, Fetcher
from agent.providers.aws.http import RetryPolicy, Timeouts
from agent.providers.aws.identity import IdentityResolver
from agent.providers.aws.node_region import fallback_region
from agent.providers.aws.transport import AwsTransport
from agent.providers.common.deadline import deadline, time_left
from agent.providers.common.parameters import ConfigWarnings, require_parameter
from agent.providers.common.parsed import parsed

log = structlog.get_logger(__name__)

DEFAULT_TIMEOUT_S = 90.0
_DEADLINE_SHARE = 0.98  # requests end a little before the backstop timeout


class AwsProvider:
    """Implements :class:`agent.ports.Provider` for ``provider: aws``.

    ``env`` is the AWS SDK environment (default: the agent's own): ``AWS_REGION``,
    ``AWS_ENDPOINT_URL`` and its per-service forms, ``AWS_CA_BUNDLE``, FIPS and dual-stack.
    Credentials are never read from it: each pod authenticates with its own token.
    ``node_labels`` gives the node's region when neither ``region`` nor ``AWS_REGION`` does.
    """

    files_only = True  # returns every file, never writes into the target (ports.Provider)

    def __init__(
        self,
        name: str = "aws",
        *,
        service_accounts: ServiceAccountSource | None = None,
        node_labels: NodeLabelSource | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        pod_identity_endpoint: str = "",
        pod_identity_timeout: float = 5.0,
        retry: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
    ) -> None:
        self.name = name
        self._config_warnings = ConfigWarnings("aws.config_warning")
        self._env = dict(os.environ if env is None else env)
        self._timeout = timeout
        self._node_labels = node_labels
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

    async def _fetch(self, config: AwsConfig, pod: PodIdentity) -> list[Fetched]:
        """Credentials, then the objects. The deadline ends every attempt and retry in time
        (and shares it between the regions: regions.py); the timeout is a backstop. A failure
        at the deadline is a timeout (DEADLINE_EXCEEDED), saying what was last heard."""
        regions = " and ".join(config.regions)
        try:
            with deadline(self._timeout * _DEADLINE_SHARE) as limit:
                try:
                    async with asyncio.timeout(self._timeout):
                        credentials = await self.identities.credentials(config, pod)
                        return await self._fetcher.fetch_all(
                            config.objects, config.regions, credentials
                        )
                except ProviderUnavailable as err:
                    if time_left() or isinstance(err, ProviderTimeout):
                        raise
                    message = f"AWS ({regions}) did not answer within {limit.budget:.3g}s"
                    raise ProviderTimeout(f"{message}: {err.message}") from None
        except TimeoutError:
            raise ProviderTimeout(
                f"AWS ({regions}) did not answer within {self._timeout:g}s"
            ) from None

    async def mount(self, request: ProviderRequest) -> MountResult:
        started = time.monotonic()
        node = await fallback_region(request.attributes, self._env, self._node_labels)
        settings = parse_settings(request.attributes, self._env, node)
        text = require_parameter(request.attributes, "objects", OBJECTS_SHAPE)
        objects = await parsed(objects_from, text, *objects_context(settings))
        config = replace(settings, objects=objects)
        self._config_warnings.log(self.name, request, config.warnings)
        pod = request.identity
        fetched = await self._fetch(config, pod)
        result = mount_result(fetched, request.default_mode)
        # Debug (-v=1): node_publish.completed says it at -v=0, and rotation calls mount at
        # every poll, where an unchanged volume is silent at -v=0 (rotation.fetched is -v=1).
        log.debug(
            "aws.mount.completed",
            provider=self.name,
            namespace=pod.namespace,
            pod=pod.name,
            service_account=shown_name(pod.service_account) if pod.service_account else "",
            method="pod-identity" if config.use_pod_identity else "irsa",
            regions=list(config.regions),
            objects=len(config.objects),
            files=len(result.files),
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )
        return result
