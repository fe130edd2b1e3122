"""One error hierarchy for the agent.

Each error carries a ``reason`` that reuses upstream's ``error_type`` metric values
(``FailedToMount``, ``SecretProviderClassNotFound``, ``GRPCProviderError``, ...), so dashboards
built for the upstream driver keep working. ``csi/status.py`` maps classes to gRPC codes in one
table. Messages name the field or object at fault and never carry secret material.
"""

from __future__ import annotations


def safe_message(error: BaseException) -> str:
    """What may be shown for an error: agent errors carry vetted messages; any other exception
    only its type, since its text may quote secret material (a response body, a token)."""
    if isinstance(error, AgentError):
        return error.message
    return f"unexpected {type(error).__name__}"


class AgentError(Exception):
    """Base class: every failure the agent reports to kubelet or a user is one of these."""

    reason = "FailedToMount"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__


class InvalidRequest(AgentError):
    """The request itself is malformed (missing field, readonly not set, bad attribute)."""


class ConfigError(AgentError):
    """A flag or setting is invalid; raised at start-up."""

    reason = "InvalidConfiguration"


class SecretProviderClassNotFound(AgentError):
    reason = "SecretProviderClassNotFound"


class InvalidSecretProviderClass(AgentError):
    """The SecretProviderClass exists but cannot be used (no provider, no parameters, bad YAML)."""


class ProviderNotFound(AgentError):
    reason = "ProviderNotFound"


class ProviderError(AgentError):
    """A provider could not produce the volume's content (auth failure, missing path, ...)."""

    reason = "GRPCProviderError"


class ServiceAccountNotFound(ProviderError):
    """The pod's service account, whose annotations name a cloud identity, does not exist."""


class NodeNotFound(ProviderError):
    """This agent's node (``--nodeid``), whose labels give providers its topology, does not
    exist (Kubernetes: no such Node; standalone: no Node manifest of that name)."""


class ProviderUnavailable(ProviderError):
    """The backing store could not be reached or timed out; kubelet should retry."""


class PayloadError(AgentError):
    """A provider returned files the agent refuses to write (bad path, mode or size)."""

    reason = "FileWriteError"


class FileWriteError(AgentError):
    reason = "FileWriteError"


class MountError(AgentError):
    reason = "FailedToMount"


class MountPointError(AgentError):
    reason = "FailedToEnsureMountPoint"


class StatusError(AgentError):
    """The SecretProviderClassPodStatus could not be recorded."""

    reason = "FailedToCreatePodStatus"


class SecretSyncError(AgentError):
    """A Secret that ``spec.secretObjects`` asks for cannot be built or written; the message
    names the field (``spec.secretObjects[1].type``) or the Secret at fault."""

    reason = "FailedToCreateSecret"


class ProviderTimeout(ProviderUnavailable):
    """The provider did not answer within the agent's deadline (below kubelet's 2 minutes)."""


class ProviderThrottled(ProviderUnavailable):
    """The store asked the agent to slow down: HTTP 429, or a provider's own throttling code
    (AWS ``ThrottlingException``, Google ``RESOURCE_EXHAUSTED``, Key Vault 429).

    Providers raise it instead of a plain ProviderUnavailable so the rotation scheduler backs
    off that provider (upstream #1483: no backoff under 429). ``retry_after`` is the store's
    ``Retry-After`` hint in seconds, when it gave one; the backoff never waits less.
    """

    def __init__(
        self, message: str, *, retry_after: float | None = None, reason: str | None = None
    ) -> None:
        super().__init__(message, reason=reason)
        self.retry_after = retry_after


class ShuttingDown(AgentError):
    """The agent is draining for shutdown; kubelet retries the call on the next instance."""


class VolumeFull(FileWriteError):
    """The volume's file system has no room for the content; the message names the flag
    (``--tmpfs-size``) that gives it more."""


class KubernetesApiError(AgentError):
    """A Kubernetes API call failed. ``agent/k8s`` translates every response into one of the
    subclasses, once; the message names the verb and the object, and quotes at most a
    truncated, scrubbed ``Status.message`` from the server, never a request or response body.

    ``status`` is the HTTP status (0 when no response arrived); ``retry_after`` the server's
    Retry-After hint in seconds, if it gave one.
    """

    reason = "KubernetesAPIError"

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        reason: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.status = status
        self.retry_after = retry_after

    def reworded(self, message: str, reason: str | None = None) -> KubernetesApiError:
        """The same failure (same class, status, hint) told in a caller's terms."""
        return type(self)(
            message, status=self.status, reason=reason or self.reason, retry_after=self.retry_after
        )


class ApiNotFound(KubernetesApiError):
    """404: the object (or the resource type, when a CRD is not installed) does not exist."""


class ApiConflict(KubernetesApiError):
    """409 Conflict: the object changed since it was read (stale ``resourceVersion``)."""


class ApiAlreadyExists(ApiConflict):
    """409 AlreadyExists: a create found an object of that name."""


class ApiForbidden(KubernetesApiError):
    """401 or 403: the agent's credentials are missing, expired, or lack the RBAC rule."""


class ApiGone(KubernetesApiError):
    """410: a watch or list asked for a ``resourceVersion`` the server no longer has."""


class ApiInvalid(KubernetesApiError):
    """400 or 422: the server rejected the request itself; retrying the same one cannot help."""


class ApiUnavailable(KubernetesApiError):
    """No usable answer: connection refused or reset, timeout, 5xx. Worth retrying."""


class ApiConnectionLost(ApiUnavailable):
    """A connection failed while an answer (a watch's stream) was being read; ``how`` says
    how, for logs: ``keepalive`` (TCP keepalive probes went unanswered: the kernel's
    ETIMEDOUT), ``reset`` (ECONNRESET), ``closed`` (closed mid-answer, no error from the
    kernel or another one), ``read_timeout`` (nothing arrived within the client's read
    timeout)."""

    def __init__(
        self,
        message: str,
        *,
        how: str = "closed",
        status: int = 0,
        reason: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, reason=reason, retry_after=retry_after)
        self.how = how

    def reworded(self, message: str, reason: str | None = None) -> KubernetesApiError:
        return ApiConnectionLost(message, how=self.how, reason=reason or self.reason)


class ApiTooLargeResourceVersion(ApiUnavailable):
    """504 Timeout with the cause ``ResourceVersionTooLarge``: the server has not reached the
    ``resourceVersion`` asked for (its store is behind, e.g. etcd restored from an older
    backup). client-go's ``isTooLargeResourceVersionError``; its reflector then lists afresh."""


class ApiThrottled(ApiUnavailable):
    """429: the server asks the agent to slow down (``retry_after``, when it says how long)."""
