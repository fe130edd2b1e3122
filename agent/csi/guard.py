"""Wraps every RPC: in-flight tracking for graceful shutdown and error → status mapping."""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import structlog
from grpclib.exceptions import GRPCError

from agent.aio.inflight import InFlight
from agent.core.pod_info import tokens_json
from agent.csi.status import to_grpc_error
from agent.errors import AgentError
from agent.log_redaction import scrubbing, token_parts

log = structlog.get_logger("agent.csi")

Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])


def token_values(volume_context: Mapping[str, str], secrets: Mapping[str, str]) -> list[str]:
    """Each service-account token of ``csi.storage.k8s.io/serviceAccount.tokens`` (volume
    context, or the secrets map from kubelet 1.35), whole and its payload and signature apart
    (``agent.log_redaction.token_parts``). Malformed JSON yields nothing here: the publish
    reports it.
    """
    raw = tokens_json(volume_context, secrets)
    try:
        document = json.loads(raw) if raw else {}
    except ValueError:
        return []
    entries = document.values() if isinstance(document, dict) else ()
    values = []
    for entry in entries:
        token = entry.get("token") if isinstance(entry, dict) else None
        if isinstance(token, str):
            values.extend(token_parts(token))
    return values


def guarded(method: Handler) -> Handler:
    @functools.wraps(method)
    async def wrapper(self: Any, request: Any) -> Any:
        inflight: InFlight = self.inflight
        # The values of a request's csi_secret map (node-publish secrets) and the pod's
        # service-account tokens are scrubbed from every log line and error message while the
        # call runs, even if a provider quotes one back.
        secrets: Mapping[str, str] = getattr(request, "secrets", None) or {}
        volume_context: Mapping[str, str] = getattr(request, "volume_context", None) or {}
        with scrubbing([*secrets.values(), *token_values(volume_context, secrets)]):
            try:
                with inflight.track():
                    return await method(self, request)
            except GRPCError:
                raise
            except AgentError as err:
                raise to_grpc_error(err) from None
            except Exception as err:
                # No traceback or message: an arbitrary exception's text may quote secrets.
                log.error(
                    "csi.unexpected_error", method=method.__name__, error_type=type(err).__name__
                )
                raise to_grpc_error(err) from None

    return wrapper  # type: ignore[return-value]
