"""Helpers for the AWS provider's tests: requests as the agent builds them, a provider wired to
moto (or a proxy in front of it), and a service-account source."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field

from agent.errors import ServiceAccountNotFound
from agent.model import PodIdentity, ProviderRequest, ServiceAccountToken
from agent.providers.aws import AwsProvider
from agent.providers.aws.http import RetryPolicy, Timeouts

ROLE_ARN = "arn:aws:iam::123456789012:role/app"
IRSA = "sts.amazonaws.com"
POD_IDENTITY = "pods.eks.amazonaws.com"


@dataclass
class ServiceAccounts:
    """``ports.ServiceAccountSource`` over a dict: (namespace, name) -> annotations."""

    accounts: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    lookups: int = 0

    def add(self, namespace: str, name: str, role_arn: str | None = ROLE_ARN) -> None:
        annotations = {"eks.amazonaws.com/role-arn": role_arn} if role_arn else {}
        self.accounts[(namespace, name)] = annotations

    async def annotations(self, namespace: str, name: str) -> Mapping[str, str]:
        self.lookups += 1
        found = self.accounts.get((namespace, name))
        if found is None:
            raise ServiceAccountNotFound(f"serviceaccount {namespace}/{name} not found")
        return found


@dataclass
class Sleeps:
    """Retry backoff without waiting: records what would have been slept."""

    slept: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


def objects_yaml(text: str) -> str:
    return textwrap.dedent(text).strip() + "\n"


def aws_request(
    objects: str,
    *,
    tokens: Mapping[str, str] | None = None,
    namespace: str = "default",
    pod: str = "web-0",
    uid: str = "uid-web-0",
    service_account: str = "web",
    default_mode: int = 0o644,
    extra: Mapping[str, str] | None = None,
    **parameters: str,
) -> ProviderRequest:
    """What the agent hands the provider for a pod mounting an ``aws`` SecretProviderClass;
    ``extra`` and ``parameters`` are its parameters besides ``objects`` (``extra``: for a
    caller that holds them in a mapping)."""
    if tokens is None:
        tokens = {IRSA: "header.payload.signature", POD_IDENTITY: "header.payload.signature"}
    identity = PodIdentity(
        namespace,
        pod,
        uid,
        service_account,
        {audience: ServiceAccountToken(token) for audience, token in tokens.items()},
    )
    return ProviderRequest(
        attributes={"objects": objects_yaml(objects), **(extra or {}), **parameters},
        secrets={},
        identity=identity,
        target_path=f"/var/lib/kubelet/pods/{uid}/volumes/kubernetes.io~csi/secrets/mount",
        default_mode=default_mode,
    )


def aws_provider(
    endpoint: str,
    service_accounts: ServiceAccounts | None = None,
    *,
    sleeps: Sleeps | None = None,
    region: str = "us-east-1",
    timeout: float = 20.0,
    **env: str,
) -> AwsProvider:
    """A provider whose every AWS call goes to ``endpoint`` (moto, a proxy, or a fake)."""
    environment = {"AWS_ENDPOINT_URL": endpoint, "AWS_REGION": region, **env}
    return AwsProvider(
        service_accounts=service_accounts,
        env=environment,
        timeout=timeout,
        retry=RetryPolicy(sleep=sleeps or Sleeps()),
        timeouts=Timeouts(connect=2.0, attempt=5.0),
    )
