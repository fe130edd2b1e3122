"""Wraps every RPC: in-flight tracking for graceful shutdown and error → status mapping."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import structlog
from grpclib.exceptions import GRPCError

from agent.aio.inflight import InFlight
from agent.csi.status import to_grpc_error
from agent.errors import AgentError
from agent.logs import scrubbing

log = structlog.get_logger("agent.csi")

Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])


def guarded(method: Handler) -> Handler:
    @functools.wraps(method)
    async def wrapper(self: Any, request: Any) -> Any:
        inflight: InFlight = self.inflight
        # The values of a request's csi_secret map (node-publish secrets) are scrubbed from every
        # log line and error message while the call runs, even if a provider quotes one back.
        secrets: Mapping[str, str] = getattr(request, "secrets", None) or {}
        with scrubbing(secrets.values()):
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
