"""Where each AWS call goes: the SDKs' standard environment, then botocore's endpoint rules.

The environment variables are the ones every AWS SDK honours (AWS SDKs and Tools reference,
"Service-specific endpoints", "Dual-stack and FIPS endpoints"), so an operator points the agent at
a VPC endpoint, a proxy or moto the way they would any SDK:

- ``AWS_ENDPOINT_URL_SECRETS_MANAGER``, ``AWS_ENDPOINT_URL_SSM``, ``AWS_ENDPOINT_URL_STS``, then
  ``AWS_ENDPOINT_URL`` for all three; ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`` disables both;
- ``AWS_USE_FIPS_ENDPOINT`` and ``AWS_USE_DUALSTACK_ENDPOINT``;
- ``AWS_CA_BUNDLE``: the CA certificates to trust instead of the system's.

Host names for a region (partitions such as aws-cn and aws-us-gov, FIPS and dual-stack variants)
come from the endpoint rule sets botocore ships for each service, evaluated by botocore.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.errors import ProviderError


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """An AWS service as the SDKs name it."""

    name: str  # botocore's model name and SigV4 signing name
    env_suffix: str  # AWS_ENDPOINT_URL_<suffix>: the service id, upper case, '_' for spaces
    title: str  # for messages


SECRETS_MANAGER = ServiceInfo("secretsmanager", "SECRETS_MANAGER", "Secrets Manager")
SSM = ServiceInfo("ssm", "SSM", "SSM Parameter Store")
STS = ServiceInfo("sts", "STS", "STS")

_TRUE = frozenset({"true", "1"})


@dataclass(frozen=True, slots=True)
class AwsEnvironment:
    """The agent's AWS SDK settings, read once from its environment."""

    endpoint_urls: Mapping[str, str] = field(default_factory=dict)  # service name -> URL
    use_fips: bool = False
    use_dualstack: bool = False
    ca_bundle: str = ""
    region: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AwsEnvironment:
        ignore = env.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").lower() in _TRUE
        urls: dict[str, str] = {}
        if not ignore:
            for service in (SECRETS_MANAGER, SSM, STS):
                url = env.get(f"AWS_ENDPOINT_URL_{service.env_suffix}") or env.get(
                    "AWS_ENDPOINT_URL", ""
                )
                if url:
                    urls[service.name] = url
        return cls(
            endpoint_urls=urls,
            use_fips=env.get("AWS_USE_FIPS_ENDPOINT", "").lower() in _TRUE,
            use_dualstack=env.get("AWS_USE_DUALSTACK_ENDPOINT", "").lower() in _TRUE,
            ca_bundle=env.get("AWS_CA_BUNDLE", ""),
            region=env.get("AWS_REGION", ""),
        )


@dataclass(frozen=True, slots=True)
class Endpoint:
    url: str  # without a trailing slash
    signing_name: str
    signing_region: str


class EndpointResolver:
    """Resolves (service, region) to a URL and SigV4 scope.

    Rule sets are JSON files: :meth:`load` reads them (blocking; the transport calls it in a
    worker thread before the first request), after which resolving is CPU only and cached.
    """

    def __init__(self, environment: AwsEnvironment) -> None:
        self._environment = environment
        self._providers: dict[str, Any] = {}
        self._resolved: dict[tuple[str, str], Endpoint] = {}
        self._loader: Any = None

    @property
    def loader(self) -> Any:
        """botocore's data loader (one, so its cache serves every file it reads)."""
        if self._loader is None:
            from botocore.loaders import create_loader

            self._loader = create_loader()
        return self._loader

    def load(self, *services: ServiceInfo) -> None:
        """Read the rule sets of ``services`` now (file I/O)."""
        for service in services:
            self._provider(service.name)

    def resolve(self, service: ServiceInfo, region: str) -> Endpoint:
        key = (service.name, region)
        found = self._resolved.get(key)
        if found is None:
            found = self._resolved[key] = self._resolve(service, region)
        return found

    def _resolve(self, service: ServiceInfo, region: str) -> Endpoint:
        from botocore.exceptions import BotoCoreError

        params: dict[str, Any] = {
            "Region": region,
            "UseFIPS": self._environment.use_fips,
            "UseDualStack": self._environment.use_dualstack,
        }
        custom = self._environment.endpoint_urls.get(service.name)
        if custom:
            params["Endpoint"] = custom
        try:
            resolved = self._provider(service.name).resolve_endpoint(**params)
        except BotoCoreError as err:
            # The rule sets' own messages, e.g. "FIPS and custom endpoint are not supported".
            raise ProviderError(f"no {service.title} endpoint for region {region}: {err}") from None
        signing_name, signing_region = service.name, region
        for scheme in resolved.properties.get("authSchemes", ()):
            if scheme.get("name") == "sigv4":
                signing_name = scheme.get("signingName", signing_name)
                signing_region = scheme.get("signingRegion", signing_region)
                break
        return Endpoint(str(resolved.url).rstrip("/"), signing_name, signing_region)

    def _provider(self, service: str) -> Any:
        provider = self._providers.get(service)
        if provider is None:
            from botocore.endpoint_provider import EndpointProvider

            ruleset = self.loader.load_service_model(service, "endpoint-rule-set-1")
            provider = EndpointProvider(ruleset, self.loader.load_data("partitions"))
            self._providers[service] = provider
        return provider
