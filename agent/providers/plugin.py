"""Client for upstream provider plugins (``/v1alpha1.CSIDriverProvider`` on a unix socket).

Every provider DaemonSet written for the upstream driver (Azure, GCP, AWS, Akeyless, Conjur, ...)
keeps working because this client sends exactly what upstream sends (reference §4.2-4.5):
``:authority`` ``localhost``, attributes and secrets as Go ``encoding/json`` text, the default
mode as a JSON number string, and upstream's retry policy (3 attempts on UNAVAILABLE, backoff
1s x1.1 up to 10s, wait-for-ready while the socket cannot be connected). The channel is
agent/providers/plugin_channel.py's; the request and the reading of the answer are
agent/providers/plugin_messages.py's.
"""

from __future__ import annotations

import asyncio
import os
import random
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError, StreamTerminatedError

from agent._proto import v1alpha1 as pb
from agent.errors import ProviderError, ProviderTimeout, ProviderUnavailable
from agent.model import MountResult, ProviderRequest
from agent.platform import current as current_platform
from agent.platform.afunix import UnixSockets
from agent.ports import Provider
from agent.providers.plugin_channel import LimitedCodec, LocalhostChannel
from agent.providers.plugin_messages import MountResponseReader, mount_request

log = structlog.get_logger("agent.providers.plugin")

API_VERSION = "v1alpha1"
VERSION_TIMEOUT = 5.0
MAX_ATTEMPTS = 3
BACKOFF_MULTIPLIER = 1.1
MAX_BACKOFF = 10.0

_T = TypeVar("_T")
Fallback = Callable[[], Awaitable[Provider]]


class PluginRefused(ProviderUnavailable):
    """Nobody listens on the plugin's socket: a file a crashed plugin left behind."""


@dataclass(slots=True)
class _Tries:
    """Where one call's retries stand (``PluginProvider._call``)."""

    backoff: float  # seconds: the next pause is uniformly random below it
    attempts: int = 0  # tries the plugin answered or dropped; waiting for its socket uses none
    failure: ProviderError | None = None  # the last try's, raised if the deadline passes
    lost: bool = False  # the connection carrying this call dropped


class PluginProvider:
    """One upstream plugin; one lazily connected channel, reused and reconnected by grpclib."""

    def __init__(
        self,
        name: str,
        socket_path: str,
        *,
        max_recv_bytes: int,
        timeout: float,
        backoff: float = 1.0,
        fallback: Fallback | None = None,
        sockets: UnixSockets | None = None,
    ) -> None:
        self.name = name
        self.socket_path = socket_path
        self._sockets = sockets or current_platform().sockets
        self._max_recv_bytes = max_recv_bytes
        self._timeout = timeout
        self._backoff = backoff
        # A preferred plugin's built-in (--prefer-plugin-providers): it serves while the
        # socket refuses connections, instead of waiting for a plugin that crashed.
        self._fallback = fallback
        self._refused_logged = False
        self._responses = MountResponseReader(name)
        self._channel: Channel | None = None
        self._stub: pb.CsiDriverProviderStub | None = None

    def _client(self) -> pb.CsiDriverProviderStub:
        # Created on first use: grpclib binds the channel to the running loop.
        if self._stub is None:
            self._channel = LocalhostChannel(
                self.socket_path, self._sockets, LimitedCodec(self._max_recv_bytes)
            )
            self._stub = pb.CsiDriverProviderStub(self._channel)
        return self._stub

    async def mount(self, request: ProviderRequest) -> MountResult:
        message = mount_request(request)
        stub = self._client()
        try:
            response = await self._call("Mount", lambda t: stub.mount(message, timeout=t))
        except PluginRefused as refused:
            return await self._fall_back(request, refused)
        self._refused_logged = False
        return self._responses.read(response)

    async def _fall_back(self, request: ProviderRequest, refused: PluginRefused) -> MountResult:
        if self._fallback is None:
            raise refused
        if not self._refused_logged:  # once until the plugin answers again
            log.warning(
                "plugin.refused",
                provider=self.name,
                socket=self.socket_path,
                using="built-in",
                error=refused.message,
            )
            self._refused_logged = True
        return await (await self._fallback()).mount(request)

    async def version(self) -> tuple[str, str, str]:
        """``(version, runtime_name, runtime_version)`` of the plugin (health check)."""
        stub = self._client()
        request = pb.VersionRequest(version=API_VERSION)
        reply = await self._call(
            "Version", lambda t: stub.version(request, timeout=t), VERSION_TIMEOUT
        )
        return reply.version, reply.runtime_name, reply.runtime_version

    async def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
        self._channel = self._stub = None

    async def _call(
        self,
        rpc: str,
        send: Callable[[float], Awaitable[_T]],
        timeout: float | None = None,
    ) -> _T:
        """Upstream's service config: wait for ready, retry UNAVAILABLE, one overall deadline.

        One departure: a call whose connection dropped and whose socket is then gone (the
        plugin's pod died mid-call) fails at once as UNAVAILABLE instead of waiting for a
        plugin that may never return; kubelet retries, and the next call reconnects.
        """
        budget = self._timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        tries = _Tries(backoff=self._backoff)
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise tries.failure or self._timed_out(rpc, budget)
            try:
                async with asyncio.timeout(remaining):
                    return await send(remaining)
            except TimeoutError:
                raise self._timed_out(rpc, budget) from None
            except (OSError, StreamTerminatedError, GRPCError) as err:
                failure = self._note_failure(rpc, err, tries)
            if tries.attempts >= MAX_ATTEMPTS:
                raise failure
            await self._back_off(rpc, tries, deadline)

    def _note_failure(
        self, rpc: str, err: OSError | StreamTerminatedError | GRPCError, tries: _Tries
    ) -> ProviderError:
        """Record a failed try in ``tries`` and return its error; raise what neither waiting
        nor a retry can mend."""
        if isinstance(err, OSError):
            failure = self._unconnected(rpc, err, tries)
        elif isinstance(err, StreamTerminatedError):
            tries.attempts += 1
            tries.lost = True
            failure = self._failed(rpc, Status.UNAVAILABLE, "connection lost")
        else:
            tries.attempts += 1
            failure = self._failed(rpc, err.status, err.message)
            if err.status is not Status.UNAVAILABLE:
                raise failure from None
        tries.failure = failure
        return failure

    def _unconnected(self, rpc: str, err: OSError, tries: _Tries) -> ProviderError:
        """The socket could not be reached: waited for (upstream's waitForReady) unless the call
        lost its connection before or a built-in can serve instead."""
        if tries.lost:
            raise self._vanished(rpc, err) from None
        if self._fallback is not None and isinstance(
            err, ConnectionRefusedError | FileNotFoundError
        ):
            # A built-in can serve now: waiting for ready would only delay it.
            raise PluginRefused(self._not_ready(err).message) from None
        # Socket missing or refused: waitForReady keeps waiting, without using attempts.
        if tries.failure is None:
            log.info("plugin.not_ready", provider=self.name, socket=self.socket_path)
        return self._not_ready(err)

    async def _back_off(self, rpc: str, tries: _Tries, deadline: float) -> None:
        """Pause before the next try, never past ``deadline`` (the loop's clock), and grow the
        backoff by upstream's multiplier up to its cap."""
        if tries.attempts:
            log.debug("plugin.retry", provider=self.name, rpc=rpc, attempts=tries.attempts)
        # grpc-go's retry delay: uniformly random below the current backoff.
        pause = random.uniform(0, tries.backoff)  # noqa: S311 (jitter, not cryptography)
        left = deadline - asyncio.get_running_loop().time()
        await asyncio.sleep(min(pause, max(left, 0)))
        tries.backoff = min(tries.backoff * BACKOFF_MULTIPLIER, MAX_BACKOFF)

    def _vanished(self, rpc: str, err: OSError) -> ProviderUnavailable:
        why = err.strerror or type(err).__name__
        log.warning("plugin.vanished", provider=self.name, socket=self.socket_path, rpc=rpc)
        return ProviderUnavailable(
            f"provider {self.name!r} went away during {rpc}: its socket {self.socket_path} is "
            f"gone ({why}); kubelet will retry once the plugin is back"
        )

    def _timed_out(self, rpc: str, budget: float) -> ProviderTimeout:
        return ProviderTimeout(f"provider {self.name!r} did not answer {rpc} within {budget:g}s")

    def _not_ready(self, err: OSError) -> ProviderUnavailable:
        why = err.strerror or type(err).__name__
        kind = _not_a_socket(self.socket_path, self._sockets)
        if kind:
            why = f"it is {kind}, not a socket ({why})"
        return ProviderUnavailable(
            f"provider {self.name!r} is not reachable at {self.socket_path}: {why}"
        )

    def _failed(self, rpc: str, status: Status, detail: str | None) -> ProviderError:
        """A gRPC failure: the provider's status and its own message, never our request."""
        text = f"provider {self.name!r} {rpc} failed: rpc error: code = {status.name}"
        if detail:
            text += f" desc = {detail[:512]}"
        if status is Status.DEADLINE_EXCEEDED:
            return ProviderTimeout(text)
        if status is Status.UNAVAILABLE:
            return ProviderUnavailable(text)
        return ProviderError(text)


def _not_a_socket(path: str, sockets: UnixSockets) -> str:
    """What ``path`` is when it exists but is no socket (a stale file or directory left where
    the plugin listens, which connect() reports only as "Connection refused"); else "".
    (On Windows a socket's file is a reparse point that ``stat`` calls a regular file: the
    platform's ``is_socket`` knows it.)"""
    try:
        if sockets.is_socket(path):
            return ""
        mode = os.stat(path).st_mode
    except OSError:
        return ""
    if stat.S_ISDIR(mode):
        return "a directory"
    return "a regular file" if stat.S_ISREG(mode) else "a special file"
