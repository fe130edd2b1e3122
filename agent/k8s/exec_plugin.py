"""A kubeconfig ``exec`` credential plugin run again when its token expires, so that runs can
never pile up.

kubernetes_asyncio's runner leaves the plugin running when the request waiting for it gives up
(the request timeout cancels it), and it has no lock: with a plugin that hangs, every request
started another process that was never reaped. Here one run at a time serves every waiting
request (``ExecRefresher``), and a run whose caller gives up kills its process and reaps it.
The plugin's own command, arguments and environment are read by kubernetes_asyncio's
``ExecProvider`` (the same rules as the first run, at start); its answer is checked here as the
client authentication API describes it (``ExecCredential``: ``status.token``, optional
``status.expirationTimestamp``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from agent.k8s.identity import token_expiry
from agent.k8s.lean_import import ConfigException, exec_provider
from agent.log_redaction import scrub_text

log = structlog.get_logger(__name__)

EXPIRY_MARGIN = timedelta(seconds=10)  # run again this long before the token expires
MAX_STDERR_CHARS = 200


class ExecRefresher:
    """The ``refresh_api_key_hook`` for a kubeconfig user with an ``exec`` plugin. ``loader``
    is kubernetes_asyncio's KubeConfigLoader after its first run: its ``token`` and
    ``exec_plugin_expiry`` are kept current here.

    One run serves every request that needs a token while it runs; it is killed only when the
    last of them gives up. (Handing the run on from one waiter to the next, as a lock would,
    starts a new run whenever one waiter's timeout comes a moment before another's.)
    """

    def __init__(self, loader: Any) -> None:
        self._loader = loader
        self._run: asyncio.Task[tuple[str, datetime | None]] | None = None
        self._waiting = 0

    def _fresh(self) -> bool:
        expiry = getattr(self._loader, "exec_plugin_expiry", None)
        # Without an expiry the plugin's token is kept, as client-go does until a 401.
        return expiry is None or datetime.now(UTC) + EXPIRY_MARGIN < expiry

    async def __call__(self, configuration: Any) -> None:
        if not self._fresh():
            token, expiry = await self._join_run()
            self._loader.token = f"Bearer {token}"
            self._loader.exec_plugin_expiry = expiry
        configuration.api_key["BearerToken"] = self._loader.token

    async def _join_run(self) -> tuple[str, datetime | None]:
        """The run in progress, or a new one: its (token, expiry). Raises what the run raised;
        the last waiter to give up cancels the run and waits until its process is reaped."""
        run = self._run
        if run is None:
            run = self._run = asyncio.create_task(run_plugin(self._loader._user["exec"]))
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

    def _ended(self, run: asyncio.Task[tuple[str, datetime | None]]) -> None:
        if self._run is run:
            self._run = None
        if not run.cancelled():
            run.exception()  # retrieved: each waiter raises it; no "never retrieved" warning


async def run_plugin(exec_config: Any) -> tuple[str, datetime | None]:
    """Run the plugin once: (its token, when it expires or None). ConfigException names the
    command and what went wrong (its stderr scrubbed and cut); a cancelled run kills it."""
    provider = exec_provider.ExecProvider(exec_config)
    command = provider.args[0]
    info = {
        "apiVersion": provider.api_version,
        "kind": "ExecCredential",
        "spec": {"interactive": False},  # the agent has no terminal to ask anyone
    }
    process = await asyncio.create_subprocess_exec(
        *provider.args,
        env={**provider.env, "KUBERNETES_EXEC_INFO": json.dumps(info)},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    started = time.monotonic()
    try:
        stdout, stderr = await process.communicate()
    except BaseException:  # the request gave up (timeout, shutdown): no process left behind
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await asyncio.shield(process.wait())
        seconds = round(time.monotonic() - started, 1)
        log.warning("k8s.exec_plugin_killed", command=command, after_s=seconds)
        raise
    if process.returncode != 0:
        detail = scrub_text(" ".join(stderr.decode(errors="replace").split()))
        raise ConfigException(
            f"exec plugin {command} exited with {process.returncode}"
            + (f": {detail[:MAX_STDERR_CHARS]}" if detail else "")
        )
    return _credential(command, str(provider.api_version), stdout)


def _credential(command: str, api_version: str, stdout: bytes) -> tuple[str, datetime | None]:
    try:
        answer = json.loads(stdout)
    except ValueError:
        raise ConfigException(f"exec plugin {command} printed no JSON") from None
    if not isinstance(answer, dict) or answer.get("apiVersion") != api_version:
        raise ConfigException(
            f"exec plugin {command} did not print an ExecCredential of {api_version}"
        )
    status = answer.get("status")
    if not isinstance(status, dict):
        raise ConfigException(f"exec plugin {command} printed no status")
    token = status.get("token")
    if not isinstance(token, str) or not token.strip():
        raise ConfigException(f"exec plugin {command} printed no status.token")
    return token.strip(), token_expiry(status.get("expirationTimestamp"))
