"""Running a kubeconfig ``exec`` credential plugin: at start and whenever its token expires.

kubernetes_asyncio's runner leaves the plugin running when the caller waiting for it gives up
(a request's timeout, the start's), and it has no lock: with a plugin that hangs, every request
started another process that was never reaped, and the one started at start outlived the
agent's own error. Here every run (the first, through ``agent.k8s.kubeconfig_loader``, and the
refreshes) kills its process and reaps it when its caller gives up, and one run at a time
serves every waiting request (``ExecRefresher``). A run is a process group of its own, killed
whole: a wrapper script's helper that hangs held the plugin's stdout open, and asyncio reaps a
process only once its pipes end, so the caller's give-up waited for the helper. Its stdout is
capped (MAX_OUTPUT_BYTES): kept in memory, an endless one grew by GiBs a minute. The command,
arguments and environment come from ``agent.k8s.exec_config``; the answer is read by
``agent.k8s.exec_credential``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from agent.k8s.exec_config import PluginCommand
from agent.k8s.exec_credential import ExecCredential, parse_credential
from agent.k8s.lean_import import ConfigException
from agent.log_redaction import scrub_text

log = structlog.get_logger(__name__)

EXPIRY_MARGIN = timedelta(seconds=10)  # run again this long before the token expires
MAX_STDERR_CHARS = 200
STDERR_KEPT_BYTES = 64 * 1024  # read on to the end; only this much is kept for the error
MAX_OUTPUT_BYTES = 1024 * 1024  # an ExecCredential, a certificate and key included, is KiBs
READ_CHUNK = 64 * 1024
STOP_WAIT_S = 5.0


class ExecRefresher:
    """The ``refresh_api_key_hook`` for a kubeconfig user whose plugin gave a token at start
    (``token``, ``expiry``: that first run's); it runs the plugin again once the token is
    within EXPIRY_MARGIN of its expiry.

    One run serves every request that needs a token while it runs; it is killed only when the
    last of them gives up. (Handing the run on from one waiter to the next, as a lock would,
    starts a new run whenever one waiter's timeout comes a moment before another's.)
    """

    def __init__(self, plugin: PluginCommand, token: str, expiry: datetime | None) -> None:
        self._plugin = plugin
        self._token = token
        self._expiry = expiry
        self._run: asyncio.Task[ExecCredential] | None = None
        self._waiting = 0

    def _fresh(self) -> bool:
        # Without an expiry the plugin's token is kept, as client-go does until a 401.
        return self._expiry is None or datetime.now(UTC) + EXPIRY_MARGIN < self._expiry

    async def __call__(self, configuration: Any) -> None:
        if not self._fresh():
            credential = await self._join_run()
            if credential.token is None:  # the client's certificate is fixed when it connects
                raise ConfigException(f"{self._plugin} printed no status.token")
            self._token, self._expiry = credential.token, credential.expiry
        configuration.api_key["BearerToken"] = f"Bearer {self._token}"

    async def _join_run(self) -> ExecCredential:
        """The run in progress, or a new one: its credential. Raises what the run raised;
        the last waiter to give up cancels the run and waits until its process is reaped."""
        run = self._run
        if run is None:
            run = self._run = asyncio.create_task(run_plugin(self._plugin))
            run.add_done_callback(self._ended)
        self._waiting += 1
        try:
            return await asyncio.shield(run)
        finally:
            self._waiting -= 1
            if self._waiting == 0 and not run.done():
                run.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await run  # run_plugin kills and reaps the process on its way out

    def _ended(self, run: asyncio.Task[ExecCredential]) -> None:
        if self._run is run:
            self._run = None
        if not run.cancelled():
            run.exception()  # retrieved: each waiter raises it; no "never retrieved" warning


async def run_plugin(plugin: PluginCommand) -> ExecCredential:
    """Run the plugin once: its credential. ConfigException names the command and what went
    wrong (its stderr scrubbed and cut; more than MAX_OUTPUT_BYTES on stdout); a run that is
    cancelled or prints too much is killed with every process it started (``_stop``)."""
    process = await _start(plugin)
    started = time.monotonic()
    try:
        stdout, stderr = await _output(plugin, process)
        await process.wait()
    except BaseException:  # the caller gave up (timeout, shutdown), or too much output
        await asyncio.shield(_stop(process))
        seconds = round(time.monotonic() - started, 1)
        log.warning(
            "k8s.exec_plugin_killed", user=plugin.user, command=plugin.command, after_s=seconds
        )
        raise
    if process.returncode != 0:
        detail = scrub_text(" ".join(stderr.decode(errors="replace").split()))
        raise ConfigException(
            f"{plugin} exited with {process.returncode}"
            + (f": {detail[:MAX_STDERR_CHARS]}" if detail else "")
        )
    return parse_credential(plugin, stdout)


async def _start(plugin: PluginCommand) -> asyncio.subprocess.Process:
    """The plugin's process, in a process group of its own (POSIX) so that ``_stop`` reaches
    the helpers a wrapper script starts without ``exec``."""
    info = {
        "apiVersion": plugin.api_version,
        "kind": "ExecCredential",
        "spec": {"interactive": False},  # the agent has no terminal to ask anyone
    }
    group: dict[str, Any] = {"process_group": 0} if os.name == "posix" else {}
    try:
        return await asyncio.create_subprocess_exec(
            plugin.command,
            *plugin.args,
            env={**os.environ, **plugin.env, "KUBERNETES_EXEC_INFO": json.dumps(info)},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            **group,
        )
    except OSError as err:
        raise ConfigException(f"{plugin} cannot be started: {err.strerror}") from None
    except NotImplementedError:  # Windows' selector loop (docs/windows.md)
        raise ConfigException(
            f"{plugin} cannot be started: this event loop runs no programs"
        ) from None


async def _output(
    plugin: PluginCommand, process: asyncio.subprocess.Process
) -> tuple[bytes, bytes]:
    """(stdout, the start of stderr), both read until the plugin closes them. ConfigException
    as soon as stdout passes MAX_OUTPUT_BYTES: an answer is a few KiB, and an endless one
    would otherwise be kept in memory until the caller gives up."""
    assert process.stdout is not None and process.stderr is not None
    errors = asyncio.ensure_future(_head(process.stderr, STDERR_KEPT_BYTES))
    try:
        stdout = await _up_to(process.stdout, MAX_OUTPUT_BYTES)
        if stdout is None:
            raise ConfigException(f"{plugin} printed more than {MAX_OUTPUT_BYTES} bytes (killed)")
        return stdout, await errors
    finally:
        if not errors.done():
            errors.cancel()
            await asyncio.wait([errors])  # its read lets go of the stream before _stop's


async def _up_to(stream: asyncio.StreamReader, limit: int) -> bytes | None:
    """The stream up to its end; None once it passes ``limit`` bytes."""
    kept = bytearray()
    while chunk := await stream.read(READ_CHUNK):
        kept += chunk
        if len(kept) > limit:
            return None
    return bytes(kept)


async def _head(stream: asyncio.StreamReader, keep: int) -> bytes:
    """The first ``keep`` bytes of the stream, read to its end (a writer is never blocked)."""
    kept = bytearray()
    while chunk := await stream.read(READ_CHUNK):
        kept += chunk[: max(0, keep - len(kept))]
    return bytes(kept)


async def _stop(process: asyncio.subprocess.Process) -> None:
    """Kill the plugin's process group and reap it. Its output is read (and dropped) until it
    ends: a pipe left full would hold the end back, and asyncio reaps a process only once its
    pipes have ended. A process that left the group and keeps them open is not waited for
    beyond STOP_WAIT_S."""
    with contextlib.suppress(ProcessLookupError):
        killpg = getattr(os, "killpg", None)
        if killpg is not None:
            killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
    assert process.stdout is not None and process.stderr is not None
    try:
        async with asyncio.timeout(STOP_WAIT_S):
            await asyncio.gather(_drain(process.stdout), _drain(process.stderr))
            await process.wait()
    except TimeoutError:
        log.warning("k8s.exec_plugin_output_left_open", pid=process.pid)


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.read(READ_CHUNK):
        pass
