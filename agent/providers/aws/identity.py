"""The pod's AWS credentials: IRSA or EKS Pod Identity, as ASCP (v3+) gets them.

- IRSA (default): the pod's token for audience ``sts.amazonaws.com`` and the role ARN in its
  service account's ``eks.amazonaws.com/role-arn`` annotation go to STS
  AssumeRoleWithWebIdentity (primary region, then the failover region if STS there fails).
- EKS Pod Identity (``usePodIdentity: "true"``): the pod's token for ``pods.eks.amazonaws.com``
  goes, as the ``Authorization`` header, to the node's Pod Identity Agent
  (``http://169.254.170.23/v1/credentials``, or ``http://[fd00:ec2::23]/v1/credentials`` as
  ``preferredAddressType`` says; the agent flag ``--aws-pod-identity-endpoint`` replaces both).

Tokens come only from the CSI driver's ``tokenRequests`` (ASCP dropped every other source in
v3.0.0). Credentials are cached per pod and JWT (credentials.py) until shortly before expiry.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime

from agent.documents.names import shown_name
from agent.errors import ProviderError, ProviderThrottled, ProviderUnavailable
from agent.model import SERVICE_ACCOUNT_NAME, SERVICE_ACCOUNT_TOKENS, PodIdentity
from agent.ports import ServiceAccountSource
from agent.providers.aws.config import AddressType, AwsConfig
from agent.providers.aws.credentials import (
    AwsCredentialCache,
    AwsCredentials,
    IdentityKey,
    Method,
)
from agent.providers.aws.errors import AwsApiError
from agent.providers.aws.regions import primary_share
from agent.providers.aws.transport import AwsTransport
from agent.providers.credential_cache import cache_lifetime, jwt_digest

IRSA_AUDIENCE = "sts.amazonaws.com"
POD_IDENTITY_AUDIENCE = "pods.eks.amazonaws.com"
ROLE_ARN_ANNOTATION = "eks.amazonaws.com/role-arn"
POD_IDENTITY_ENDPOINTS = {
    "ipv4": "http://169.254.170.23/v1/credentials",
    "ipv6": "http://[fd00:ec2::23]/v1/credentials",
}
_SESSION_NAME_CHARS = re.compile(r"[^\w+=,.@-]")
_MAX_SESSION_NAME = 64
_MAX_AGENT_MESSAGE = 200


class IdentityResolver:
    """Turns a pod's identity into AWS credentials; one per provider, shared by all mounts."""

    def __init__(
        self,
        transport: AwsTransport,
        service_accounts: ServiceAccountSource | None,
        *,
        pod_identity_endpoint: str = "",
        pod_identity_timeout: float = 5.0,
        cache: AwsCredentialCache | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._transport = transport
        self._service_accounts = service_accounts
        self._pod_identity_endpoint = pod_identity_endpoint
        self._pod_identity_timeout = pod_identity_timeout
        self.cache = cache if cache is not None else AwsCredentialCache()
        self._wall_clock = wall_clock
        self.logins = 0  # credentials bought (not served from the cache), for tests and logs

    async def credentials(self, config: AwsConfig, pod: PodIdentity) -> AwsCredentials:
        audience = POD_IDENTITY_AUDIENCE if config.use_pod_identity else IRSA_AUDIENCE
        jwt = _token(pod, audience, config.use_pod_identity)
        role_arn = "" if config.use_pod_identity else await self._role_arn(pod)
        method: Method = "pod-identity" if config.use_pod_identity else "irsa"
        key = IdentityKey(
            method, pod.namespace, pod.service_account, role_arn, pod.uid, jwt_digest(jwt)
        )

        async def log_in() -> tuple[AwsCredentials, float]:
            if config.use_pod_identity:
                fresh = await self._pod_identity(jwt, config)
            else:
                fresh = await self._assume_role(jwt, role_arn, pod, config.regions)
            self.logins += 1
            return fresh, cache_lifetime(self._ttl(fresh))

        return await self.cache.get_or_fetch(key, log_in)

    async def _role_arn(self, pod: PodIdentity) -> str:
        if not pod.service_account:
            raise ProviderError(
                f"IRSA needs the pod's service account, and {SERVICE_ACCOUNT_NAME} is missing "
                "from the volume context (is podInfoOnMount: true set on the CSIDriver?)"
            )
        if self._service_accounts is None:
            raise ProviderError(
                "IRSA needs the service account's eks.amazonaws.com/role-arn annotation, and "
                "this agent has no service account source"
            )
        annotations = await self._service_accounts.annotations(pod.namespace, pod.service_account)
        role_arn = annotations.get(ROLE_ARN_ANNOTATION, "")
        if not role_arn:
            raise ProviderError(
                "An IAM role must be associated with service account "
                f"{shown_name(pod.service_account)} (namespace: {pod.namespace}): annotate it "
                f'with {ROLE_ARN_ANNOTATION}, or set usePodIdentity: "true" to use EKS Pod Identity'
            )
        return role_arn

    async def _assume_role(
        self, jwt: str, role_arn: str, pod: PodIdentity, regions: tuple[str, ...]
    ) -> AwsCredentials:
        params = {
            "RoleArn": role_arn,
            "RoleSessionName": session_name(pod),
            "WebIdentityToken": jwt,
        }
        failure: AwsApiError | None = None
        for index, region in enumerate(regions):
            try:
                with primary_share(regions[index:]):
                    reply = await self._transport.assume_role_with_web_identity(region, params)
            except AwsApiError as err:
                if not err.regional:
                    raise err.about(f"IRSA for role {role_arn}") from None
                failure = err  # STS in this region is in trouble: the next region may do
                continue
            issued = reply.get("Credentials") or {}
            return self._checked(
                f"IRSA for role {role_arn}: STS AssumeRoleWithWebIdentity in {region}",
                (
                    issued.get("AccessKeyId"),
                    issued.get("SecretAccessKey"),
                    issued.get("SessionToken"),
                ),
                _aware(issued.get("Expiration")),
            )
        assert failure is not None  # regions is never empty
        raise failure.about(f"IRSA for role {role_arn}")

    async def _pod_identity(self, jwt: str, config: AwsConfig) -> AwsCredentials:
        failure: ProviderError | None = None
        for url in agent_endpoints(config.address_type, self._pod_identity_endpoint):
            try:
                return await self._ask_agent(url, jwt)
            except ProviderUnavailable as err:
                failure = err  # ASCP tries the IPv6 address when the IPv4 one fails
        assert failure is not None
        raise failure

    async def _ask_agent(self, url: str, jwt: str) -> AwsCredentials:
        where = f"EKS Pod Identity Agent at {url}"
        try:
            status, document = await self._transport.get_json(
                url, {"Authorization": jwt}, self._pod_identity_timeout
            )
        except ProviderUnavailable as err:
            raise ProviderUnavailable(f"EKS Pod Identity Agent at {err.message}") from None
        body = document if isinstance(document, dict) else {}
        if status != 200:
            code = str(body.get("code") or status)
            text = " ".join(str(body.get("message") or "").split())[:_MAX_AGENT_MESSAGE]
            message = f"{where}: HTTP {status}: {code}" + (f": {text}" if text else "")
            if status == 429:
                raise ProviderThrottled(message)
            if status >= 500:
                raise ProviderUnavailable(message)
            raise ProviderError(message)
        try:
            expires_at = _parse_time(body.get("Expiration"))
        except ValueError:
            raise ProviderUnavailable(f"{where}: the answer holds no credentials") from None
        keys = (body.get("AccessKeyId"), body.get("SecretAccessKey"), body.get("Token"))
        return self._checked(where, keys, expires_at)

    def _checked(
        self, where: str, keys: tuple[object, object, object], expires_at: datetime | None
    ) -> AwsCredentials:
        """Credentials as issued: ``keys`` are the access key id, secret key and session token.

        An answer without all three (a proxy's page, nulls) is ProviderUnavailable; credentials
        already expired on arrival (the node's clock is off) are a ProviderError, since every
        AWS call would fail with them. Neither message quotes the answer.
        """
        access_key, secret_key, token = (key if isinstance(key, str) else "" for key in keys)
        if not (access_key and secret_key and token):
            raise ProviderUnavailable(f"{where}: the answer holds no credentials")
        if expires_at is not None and expires_at.timestamp() <= self._wall_clock():
            raise ProviderError(
                f"{where}: the credentials it issued expired at "
                f"{expires_at:%Y-%m-%dT%H:%M:%SZ}, before their first use (is the node's clock "
                "right?)"
            )
        return AwsCredentials(access_key, secret_key, token, expires_at)

    def _ttl(self, credentials: AwsCredentials) -> float:
        if credentials.expires_at is None:
            return 0.0  # unknown: the cache's default lifetime applies
        return max(credentials.expires_at.timestamp() - self._wall_clock(), 1e-9)


def agent_endpoints(address_type: AddressType, override: str = "") -> list[str]:
    """The Pod Identity Agent addresses to try, in order (ASCP: IPv4 then IPv6 for ``auto``)."""
    if override:
        return [override]
    if address_type == "auto":
        return [POD_IDENTITY_ENDPOINTS["ipv4"], POD_IDENTITY_ENDPOINTS["ipv6"]]
    return [POD_IDENTITY_ENDPOINTS[address_type]]


def _token(pod: PodIdentity, audience: str, pod_identity: bool) -> str:
    if not pod.tokens:
        raise ProviderError(
            f"CSI token error: {SERVICE_ACCOUNT_TOKENS} not provided - ensure tokenRequests is "
            f"configured in CSIDriver (spec.tokenRequests must list audience {audience!r})"
        )
    token = pod.token_for(audience)
    if token is None or not token.token:
        method = "Pod Identity" if pod_identity else "IRSA"
        have = ", ".join(pod.audiences) or "none"
        raise ProviderError(
            f"{method} token extraction failed: token for audience {audience!r} not found "
            f"(tokens present for: {have}) - ensure the CSIDriver spec.tokenRequests includes "
            "this audience"
        )
    return token.token


def session_name(pod: PodIdentity) -> str:
    """``<namespace>.<service account>``, as CloudTrail will show it: STS allows 2-64 of
    ``[\\w+=,.@-]``."""
    name = _SESSION_NAME_CHARS.sub("-", f"{pod.namespace}.{pod.service_account}")
    return name[:_MAX_SESSION_NAME].ljust(2, "-")


def _aware(value: object) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    return _aware(datetime.fromisoformat(value.replace("Z", "+00:00")))
