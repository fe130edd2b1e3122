"""``Status`` bodies and the exception that carries them, shaped as the kube-apiserver sends
them (``k8s.io/apimachinery/pkg/api/errors``): ``kind: Status``, ``apiVersion: v1``, empty
``metadata``, ``status: Failure``, a ``reason`` from ``metav1.StatusReason``, ``details`` naming
the object (``kind`` holds the *resource*, e.g. ``pods``, except for ``Invalid`` where it is the
Kind) and ``code`` equal to the HTTP status."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Object = dict[str, Any]

OPTIMISTIC_LOCK = (
    "the object has been modified; please apply your changes to the latest version and try again"
)
CONTINUE_EXPIRED = (
    "The provided continue parameter is too old to display a consistent list result. You can "
    "start a new list without the continue parameter, or use the continue token in this response "
    "to retrieve the remainder of the results. Continuing with the provided token results in an "
    "inconsistent list - objects that were created, modified, or deleted between the time the "
    "first chunk was returned and now may show up in the list."
)


def status_body(
    code: int, reason: str, message: str, details: Object | None = None, status: str = "Failure"
) -> Object:
    body: Object = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": status}
    if message:
        body["message"] = message
    if reason:
        body["reason"] = reason
    if details:
        body["details"] = details
    if code:
        body["code"] = code
    return body


@dataclass
class ApiError(Exception):
    """Raised anywhere in the fake; the HTTP layer turns it into the response ``code`` + body."""

    code: int
    reason: str
    message: str
    details: Object = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    metadata: Object = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.message}"

    def body(self) -> Object:
        body = status_body(self.code, self.reason, self.message, self.details)
        body["metadata"] = dict(self.metadata)
        return body


def qualified(resource: str, group: str) -> str:
    """``pods`` / ``secretproviderclasses.secrets-store.csi.x-k8s.io``: how messages name a
    resource (``schema.GroupResource.String()``)."""
    return f"{resource}.{group}" if group else resource


def _details(resource: str, group: str, name: str) -> Object:
    details: Object = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = resource
    return details


def not_found(resource: str, group: str, name: str) -> ApiError:
    message = f'{qualified(resource, group)} "{name}" not found'
    return ApiError(404, "NotFound", message, _details(resource, group, name))


def already_exists(resource: str, group: str, name: str, *, deleting: bool = False) -> ApiError:
    message = f'{qualified(resource, group)} "{name}" already exists'
    if deleting:
        message = f"object is being deleted: {message}"
    return ApiError(409, "AlreadyExists", message, _details(resource, group, name))


def conflict(resource: str, group: str, name: str, why: str = OPTIMISTIC_LOCK) -> ApiError:
    message = f'Operation cannot be fulfilled on {qualified(resource, group)} "{name}": {why}'
    return ApiError(409, "Conflict", message, _details(resource, group, name))


@dataclass(frozen=True)
class Cause:
    """One ``field.Error``: ``reason`` is a ``metav1.CauseType`` (``FieldValueInvalid``,
    ``FieldValueRequired``, ``FieldValueTypeInvalid``, ``FieldValueForbidden``...)."""

    field: str
    reason: str
    message: str

    def text(self) -> str:
        return f"{self.field}: {self.message}"


def invalid(kind: str, group: str, name: str, causes: list[Cause]) -> ApiError:
    """422 ``Invalid``; the message and ``details.kind`` use the Kind, not the resource."""
    qualified_kind = f"{kind}.{group}" if group else kind
    listed = [cause.text() for cause in causes]
    joined = listed[0] if len(listed) == 1 else "[" + ", ".join(listed) + "]"
    details = _details(kind, group, name)
    details["causes"] = [
        {"reason": c.reason, "message": c.message, "field": c.field} for c in causes
    ]
    return ApiError(422, "Invalid", f'{qualified_kind} "{name}" is invalid: {joined}', details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def expired(message: str, metadata: Object | None = None) -> ApiError:
    """410 ``Expired``: a watch or ``continue`` older than the compaction window."""
    return ApiError(410, "Expired", message, metadata=metadata or {})


def too_large_resource_version(requested: int, current: int) -> ApiError:
    """What a read at a resourceVersion the server has not reached gets, after the watch cache
    waited 3 s for it (``storage.NewTooLargeResourceVersionError``: ``NewTimeoutError``, so 504
    ``Timeout`` and a "Timeout: " prefix, plus the ``ResourceVersionTooLarge`` cause)."""
    message = f"Timeout: Too large resource version: {requested}, current: {current}"
    details = {
        "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
        "retryAfterSeconds": 1,
    }
    return ApiError(504, "Timeout", message, details, headers={"Retry-After": "1"})


def method_not_allowed(verb: str, resource: str) -> ApiError:
    return ApiError(
        405,
        "MethodNotAllowed",
        f"the server does not allow this method on the requested resource ({verb} {resource})",
    )


def unsupported_media_type(content_type: str, accepted: list[str]) -> ApiError:
    message = (
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{', '.join(accepted)}"
    )
    return ApiError(415, "UnsupportedMediaType", message or content_type)


def path_not_found() -> ApiError:
    """An unknown URL (no such group, version or resource): ``details`` stays empty."""
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")
