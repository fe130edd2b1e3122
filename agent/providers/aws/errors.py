"""Failed AWS calls, split the way failover needs: a region's trouble, or the request's fault.

A regional failure (5xx, throttling after retries, no connection, timeout) may go to the
failover region and tells kubelet to retry (UNAVAILABLE). A client fault (AccessDenied,
ResourceNotFoundException, a bad parameter) is the same in every region: no failover, and a
final error for kubelet. Messages name the service, operation, region and AWS error code, and
quote AWS's own message (which names resources, never values); never credentials or tokens.
"""

from __future__ import annotations

from typing import Any, Self

from agent.errors import ProviderError, ProviderThrottled, ProviderUnavailable

_MAX_AWS_MESSAGE = 300

# The AWS SDKs' standard retry mode (SDKs and Tools reference, "Retry behavior").
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
TRANSIENT_CODES = frozenset(
    {
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        # STS could not reach the cluster's OIDC issuer; the SDKs retry it for web identity.
        "IDPCommunicationError",
    }
)


class AwsApiError(ProviderError):
    """An AWS call failed for a reason that would be the same in any region."""

    def __init__(self, message: str, *, code: str = "", status: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.status = status

    @property
    def regional(self) -> bool:
        return isinstance(self, ProviderUnavailable)

    def about(self, subject: str) -> Self:
        """The same error, its message prefixed with what was being fetched."""
        return type(self)(f"{subject}: {self.message}", code=self.code, status=self.status)


class AwsRegionalError(AwsApiError, ProviderUnavailable):
    """The region failed us (server error, throttling, unreachable): failover may help."""


class AwsThrottledError(AwsRegionalError, ProviderThrottled):
    """The region throttled us after the SDK-style retries (a throttling code, or HTTP 429):
    the rotation scheduler backs the whole provider off (``ProviderThrottled``)."""


def describe(service: str, operation: str, region: str, code: str, text: str) -> str:
    """``Secrets Manager GetSecretValue in us-east-1: AccessDeniedException: <AWS message>``."""
    text = " ".join(text.split())[:_MAX_AWS_MESSAGE]
    detail = f"{code}: {text}" if text and text != code else code
    return f"{service} {operation} in {region}: {detail}"


def classify(status: int, code: str) -> type[AwsApiError]:
    """Throttling, transient codes and any server fault (5xx) are the region's; the SDKs retry
    the same set (plus 500/502/503/504, which ``status >= 500`` covers)."""
    if code in THROTTLING_CODES or status == 429:
        return AwsThrottledError
    if code in TRANSIENT_CODES or status >= 500:
        return AwsRegionalError
    return AwsApiError


def error_from_reply(
    service: str, operation: str, region: str, protocol: str, reply: dict[str, Any]
) -> AwsApiError:
    """The error an HTTP reply (``status_code``, ``headers``, ``body``) of ``protocol``
    (``json`` or ``query``) stands for: botocore's parser reads its code and message.

    An error reply is parsed without the operation's shape (botocore reads Code and Message
    of any error that way). A body that is not the protocol's (a proxy's page) leaves the
    HTTP status as the code that names and classifies the failure.
    """
    from botocore.parsers import ResponseParserError, create_parser

    status = int(reply["status_code"])
    try:
        parsed = create_parser(protocol).parse(reply, None).get("Error") or {}  # type: ignore[arg-type]
    except ResponseParserError:
        parsed = {}
    code = str(parsed.get("Code") or status)
    message = str(parsed.get("Message") or "")
    kind = classify(status, code)
    return kind(describe(service, operation, region, code, message), code=code, status=status)
