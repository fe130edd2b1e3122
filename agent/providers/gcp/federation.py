"""``auth: pod-adc``: the pod's own Google identity through workload identity federation.

1. The pod's service-account token for the pool (kubelet's ``tokenRequests``, audience
   ``<project>.svc.id.goog`` or the full STS audience) is exchanged at STS
   (``POST {grant_type: token-exchange, subject_token, audience, scope, ...}``) for a federated
   access token of the principal ``.../subject/ns/<namespace>/sa/<service account>``.
2. When the service account carries ``iam.gke.io/gcp-service-account``, that Google service
   account is impersonated: IAM Credentials ``generateAccessToken`` with the federated token,
   through the delegation chain of ``iam.gke.io/gcp-service-account-delegates`` (a JSON array).

Both tokens are cached (tokens.py), per pod and pod token. Upstream falls back to minting a pod
token through the TokenRequest API when kubelet sent none; the agent never calls that API for a
pod (it would need cluster-wide token-creation rights), so a missing token is an error saying
what to add.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from urllib.parse import quote

from agent.documents.names import shown_name
from agent.errors import ProviderError
from agent.model import PodIdentity
from agent.ports import ServiceAccountSource
from agent.providers.credential_cache import jwt_digest
from agent.providers.gcp.http import UNAUTHENTICATED, ApiFailure, GoogleHttp
from agent.providers.gcp.settings import Endpoints
from agent.providers.gcp.tokens import AccessToken, GoogleTokenCache, TokenKey, token_lifetime
from agent.providers.gcp.workload import WorkloadIdentity, WorkloadIdentityResolver

GSA_ANNOTATION = "iam.gke.io/gcp-service-account"
DELEGATES_ANNOTATION = "iam.gke.io/gcp-service-account-delegates"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
# RFC 8693 identifiers, not credentials.
_TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105
_JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"  # noqa: S105
_ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105


class PodCredentials:
    """Access tokens for pods, one identity (pool subject or Google service account) each."""

    def __init__(
        self,
        *,
        endpoints: Endpoints,
        http: GoogleHttp,
        resolver: WorkloadIdentityResolver,
        service_accounts: ServiceAccountSource | None,
        cache: GoogleTokenCache,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._endpoints = endpoints
        self._http = http
        self._resolver = resolver
        self._service_accounts = service_accounts
        self._cache = cache
        self._clock = clock

    async def token(self, pod: PodIdentity) -> AccessToken:
        identity = await self._resolver.resolve()
        annotations = await self._annotations(pod)
        account = annotations.get(GSA_ANNOTATION, "")
        delegates = _delegates(annotations, pod) if account else ()
        subject = _pod_token(pod, identity)
        key = TokenKey(
            "pod-adc", identity.exchange_url, identity.audience, (), pod.uid, jwt_digest(subject)
        )
        federated = await self._cache.get_or_fetch(
            key, lambda: self._timed(self._exchange(identity, subject))
        )
        if not account:
            # The federated token acts as the pool principal for ns/<namespace>/sa/<name>.
            return federated
        return await self._cache.get_or_fetch(
            key.impersonating(self._endpoints.iam_credentials, account, delegates),
            lambda: self._timed(self._impersonate(account, delegates, federated, pod)),
        )

    async def _timed(self, fetching: Awaitable[AccessToken]) -> tuple[AccessToken, float]:
        return token_lifetime(await fetching, self._clock())

    async def _annotations(self, pod: PodIdentity) -> Mapping[str, str]:
        if not pod.service_account:
            raise ProviderError(
                "the pod's service account is unknown (volume context key "
                "csi.storage.k8s.io/serviceAccount.name); the CSIDriver needs podInfoOnMount"
            )
        if self._service_accounts is None:
            raise ProviderError("auth pod-adc needs service accounts, and the agent has no source")
        return await self._service_accounts.annotations(pod.namespace, pod.service_account)

    async def _exchange(self, identity: WorkloadIdentity, subject: str) -> AccessToken:
        body = {
            "grant_type": _TOKEN_EXCHANGE,
            "subject_token_type": _JWT_TOKEN_TYPE,
            "requested_token_type": _ACCESS_TOKEN_TYPE,
            "subject_token": subject,
            "audience": identity.audience,
            "scope": CLOUD_PLATFORM_SCOPE,
        }
        try:
            reply = await self._http.json(
                "POST", identity.exchange_url, service="token exchange (STS)", body=body
            )
        except ApiFailure as failure:
            raise _error(failure, f"exchanging the pod's token for {identity.audience!r}") from None
        token = reply.get("access_token")
        if not isinstance(token, str) or not token:
            raise ProviderError("token exchange (STS): the answer has no access_token")
        expires_in = reply.get("expires_in")
        lifetime = float(expires_in) if isinstance(expires_in, int | float) else None
        return AccessToken(token, self._clock() + lifetime if lifetime else None)

    async def _impersonate(
        self,
        account: str,
        delegates: tuple[str, ...],
        federated: AccessToken,
        pod: PodIdentity,
    ) -> AccessToken:
        body: dict[str, object] = {"scope": [CLOUD_PLATFORM_SCOPE]}
        if delegates:
            body["delegates"] = [f"projects/-/serviceAccounts/{d}" for d in delegates]
        url = (
            f"{self._endpoints.iam_credentials}/v1/projects/-/serviceAccounts/"
            f"{quote(account, safe='@')}:generateAccessToken"
        )
        try:
            reply = await self._http.json(
                "POST", url, service="IAM Credentials", token=federated.value, body=body
            )
        except ApiFailure as failure:
            if failure.http_status == UNAUTHENTICATED:
                self._cache.forget(federated)
            where = f"{GSA_ANNOTATION} of service account {_ref(pod)}"
            raise _error(failure, f"impersonating {account} ({where})") from None
        token = reply.get("accessToken")
        if not isinstance(token, str) or not token:
            raise ProviderError("IAM Credentials: the answer has no accessToken")
        return AccessToken(token, parse_rfc3339(reply.get("expireTime")))


def _pod_token(pod: PodIdentity, identity: WorkloadIdentity) -> str:
    for audience in identity.token_audiences:
        token = pod.token_for(audience)
        if token is not None and token.token:
            return token.token
    wanted = " or ".join(repr(a) for a in identity.token_audiences)
    have = ", ".join(pod.audiences) or "none"
    raise ProviderError(
        f"no service account token for audience {wanted} (tokens present for: {have}); "
        f"the CSIDriver spec.tokenRequests must list audience {identity.token_audiences[-1]!r}"
    )


def _delegates(annotations: Mapping[str, str], pod: PodIdentity) -> tuple[str, ...]:
    raw = annotations.get(DELEGATES_ANNOTATION)
    if raw is None:
        return ()
    try:
        value = json.loads(raw)
    except ValueError:
        value = ...
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ProviderError(
            f"annotation {DELEGATES_ANNOTATION} of service account "
            f"{_ref(pod)}: must be a JSON array of service account "
            'emails, e.g. ["a@p.iam.gserviceaccount.com"]'
        )
    return tuple(value)


def _ref(pod: PodIdentity) -> str:
    """``namespace/name`` of the pod's service account for a message (``shown_name``)."""
    return f"{pod.namespace}/{shown_name(pod.service_account)}"


def _error(failure: ApiFailure, doing: str) -> ProviderError:
    return failure.as_error(f"{doing}: {failure.describe()}")


def parse_rfc3339(value: object) -> float | None:
    """Google's timestamps (``2024-05-01T10:00:00.123456789Z``) as epoch seconds."""
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("z", "Z").replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # Python parses at most microseconds; Google sends up to nanoseconds
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[: min(digits, 6)]}{rest[digits:]}"
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None
