"""One table from agent errors to gRPC status codes.

Kubelet treats Unavailable/DeadlineExceeded/Aborted/ResourceExhausted/Canceled as "maybe still
in progress" and everything else as final, so only transient store failures map to the former.
Nothing reaches kubelet as grpclib's generic UNKNOWN "Internal Server Error".
"""

from __future__ import annotations

from grpclib.const import Status
from grpclib.exceptions import GRPCError

from agent import errors
from agent.log_redaction import scrub_text

_CODES: tuple[tuple[type[errors.AgentError], Status], ...] = (
    (errors.ShuttingDown, Status.UNAVAILABLE),
    (errors.InvalidRequest, Status.INVALID_ARGUMENT),
    (errors.InvalidSecretProviderClass, Status.INVALID_ARGUMENT),
    (errors.SecretProviderClassNotFound, Status.NOT_FOUND),
    (errors.ProviderNotFound, Status.FAILED_PRECONDITION),
    (errors.ProviderTimeout, Status.DEADLINE_EXCEEDED),
    (errors.ProviderUnavailable, Status.UNAVAILABLE),
    (errors.ProviderError, Status.FAILED_PRECONDITION),
    (errors.PayloadError, Status.INVALID_ARGUMENT),
    (errors.VolumeFull, Status.RESOURCE_EXHAUSTED),
    (errors.MountPointError, Status.INTERNAL),
    (errors.MountError, Status.INTERNAL),
    (errors.FileWriteError, Status.INTERNAL),
    (errors.StatusError, Status.INTERNAL),
    (errors.ConfigError, Status.FAILED_PRECONDITION),
    # Kubernetes API failures reach kubelet only from the publish path (a class read directly).
    (errors.ApiUnavailable, Status.UNAVAILABLE),
    (errors.ApiNotFound, Status.NOT_FOUND),
    (errors.KubernetesApiError, Status.FAILED_PRECONDITION),
)


def code_for(error: errors.AgentError) -> Status:
    for cls, code in _CODES:
        if isinstance(error, cls):
            return code
    return Status.INTERNAL


def to_grpc_error(error: BaseException) -> GRPCError:
    if isinstance(error, GRPCError):
        return error
    if isinstance(error, errors.AgentError):
        # Kubelet turns this text into a pod event anyone with `kubectl describe` can read.
        return GRPCError(code_for(error), scrub_text(error.message))
    # Unexpected: the type name only, since arbitrary exception text may quote secret material.
    return GRPCError(
        Status.INTERNAL, f"internal error ({type(error).__name__}); see the agent's logs"
    )
