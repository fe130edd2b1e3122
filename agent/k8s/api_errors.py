"""Every Kubernetes API failure becomes one of the agent's errors, here and nowhere else.

Only the server's ``Status.reason`` and a truncated, scrubbed ``Status.message`` are quoted;
request and response bodies never are (a Secret's data or a token could be in them).
"""

from __future__ import annotations

import errno
import json
from collections.abc import Mapping

import aiohttp

from agent.errors import (
    ApiAlreadyExists,
    ApiConflict,
    ApiConnectionLost,
    ApiForbidden,
    ApiGone,
    ApiInvalid,
    ApiNotFound,
    ApiThrottled,
    ApiTooLargeResourceVersion,
    ApiUnavailable,
    KubernetesApiError,
)
from agent.k8s.header_credentials import header_problem
from agent.log_redaction import scrub_text

MAX_MESSAGE_CHARS = 200
TOO_LARGE_TEXT = "Too large resource version"  # apiserver storage.NewTooLargeResourceVersionError
_BY_STATUS: Mapping[int, type[KubernetesApiError]] = {
    400: ApiInvalid,
    401: ApiForbidden,
    403: ApiForbidden,
    404: ApiNotFound,
    410: ApiGone,
    422: ApiInvalid,
}


def from_response(
    action: str, status: int, body: bytes, headers: Mapping[str, str]
) -> KubernetesApiError:
    """Translate a non-2xx answer; ``action`` names the verb and object (``get pods ns/x``)."""
    status_object = _status_object(body)
    reason, message = _status_fields(status_object)
    text = f"{action}: HTTP {status}" + (f" {reason}" if reason else "")
    if message:
        text += f": {message}"
    if status == 429:
        return ApiThrottled(text, status=status, retry_after=_retry_after(headers))
    if status == 409:
        cls: type[KubernetesApiError] = (
            ApiAlreadyExists if reason == "AlreadyExists" else ApiConflict
        )
        return cls(text, status=status)
    if status == 504 and _too_large_resource_version(status_object):
        return ApiTooLargeResourceVersion(text, status=status, retry_after=_retry_after(headers))
    if status >= 500:
        return ApiUnavailable(text, status=status)
    return _BY_STATUS.get(status, KubernetesApiError)(text, status=status)


def from_status_object(action: str, status: object) -> KubernetesApiError:
    """A watch ``ERROR`` event carries a ``Status`` object instead of an HTTP status."""
    code = status.get("code") if isinstance(status, Mapping) else None
    body = json.dumps(status).encode() if isinstance(status, Mapping) else b""
    return from_response(action, code if isinstance(code, int) else 500, body, {})


def from_client_exception(
    action: str, status: object, reason: object, body: object, headers: object
) -> KubernetesApiError:
    """kubernetes_asyncio's ApiException (its fields): releases after 36.1.0 raise one for a
    non-2xx answer even with ``_preload_content=False`` (its commit c1a69be0)."""
    if not isinstance(status, int) or not status:  # raised before anything was sent
        return KubernetesApiError(f"{action}: the client refused the request: {reason}")
    raw = body if isinstance(body, bytes) else str(body or "").encode()
    return from_response(action, status, raw, headers if isinstance(headers, Mapping) else {})


def from_exception(action: str, error: BaseException) -> ApiUnavailable:
    """No answer at all (refused, reset, timed out, TLS failure)."""
    if isinstance(error, TimeoutError):
        return ApiUnavailable(f"{action}: timed out")
    if isinstance(error, aiohttp.ClientPayloadError):  # its text: aiohttp's parser internals
        return ApiUnavailable(f"{action}: the connection closed in the middle of the answer")
    detail = " ".join(str(error).split())[:MAX_MESSAGE_CHARS]
    return ApiUnavailable(f"{action}: {type(error).__name__}" + (f": {detail}" if detail else ""))


def refused_request(action: str, error: ValueError, authorization: str) -> KubernetesApiError:
    """The HTTP client refused to send the request: aiohttp's ValueError for a header value
    with a control character, or its UnicodeEncodeError for one that does not encode. Their
    text is never quoted (it may quote the value); ``authorization`` (the credential the
    request carried) is checked instead, for an ApiForbidden saying what is wrong with it."""
    problem = header_problem(authorization)
    if problem is not None:
        return ApiForbidden(
            f"{action}: cannot send the credentials: the Authorization header {problem}"
        )
    return KubernetesApiError(f"{action}: the client refused the request ({type(error).__name__})")


def lost_connection(action: str, socket_error: OSError | None) -> ApiConnectionLost:
    """A connection that failed in the middle of an answer, told by the kernel's error on its
    socket (None: closed without one). On a watch nothing is sent after the request, so a
    timed-out connection is TCP keepalive's verdict (``agent.k8s.keepalive``)."""
    code = socket_error.errno if socket_error is not None else None
    if code == errno.ETIMEDOUT:
        return ApiConnectionLost(
            f"{action}: the API server stopped answering TCP keepalive probes "
            "(the connection timed out)",
            how="keepalive",
        )
    if code == errno.ECONNRESET:
        return ApiConnectionLost(f"{action}: the API server reset the connection", how="reset")
    detail = f" ({socket_error.strerror})" if socket_error and socket_error.strerror else ""
    return ApiConnectionLost(
        f"{action}: the connection closed in the middle of the answer{detail}", how="closed"
    )


def _status_object(body: bytes) -> Mapping[str, object]:
    """The answer's ``Status`` object, or an empty mapping when it is not one."""
    try:
        document = json.loads(body[:65536]) if body else None
    except ValueError:
        return {}
    if not isinstance(document, Mapping) or document.get("kind") != "Status":
        return {}
    return document


def _too_large_resource_version(document: Mapping[str, object]) -> bool:
    """client-go's ``isTooLargeResourceVersionError``: the ``ResourceVersionTooLarge`` cause,
    or (servers before 1.17.0 and 1.17.0 to 1.18.5 set no cause type) the text
    "Too large resource version" in a cause or in the message of a ``Timeout``."""
    details = document.get("details")
    causes = details.get("causes") if isinstance(details, Mapping) else None
    for cause in causes if isinstance(causes, list) else ():
        if isinstance(cause, Mapping) and cause.get("reason") == "ResourceVersionTooLarge":
            return True
        if isinstance(cause, Mapping) and cause.get("message") == TOO_LARGE_TEXT:
            return True
    message = document.get("message")
    return document.get("reason") == "Timeout" and TOO_LARGE_TEXT in str(message or "")


def _status_fields(document: Mapping[str, object]) -> tuple[str, str]:
    if not document:
        return "", ""
    reason = document.get("reason")
    message = document.get("message")
    reason_text = reason if isinstance(reason, str) and reason.isidentifier() else ""
    message_text = scrub_text(" ".join(str(message).split())) if message else ""
    if len(message_text) > MAX_MESSAGE_CHARS:
        message_text = message_text[:MAX_MESSAGE_CHARS] + "…"
    return reason_text, message_text


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After", "")
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
