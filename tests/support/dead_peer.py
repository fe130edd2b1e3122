"""A quiet watch whose server vanishes without a word, for ``test_dead_connection``.

Run as root in a network namespace of its own (``unshare --net python -m
tests.support.dead_peer``): it makes a second namespace for the fake API server, joins the two
by a veth pair, opens two quiet watches of the server (TCP keepalive on, scaled down, and off)
and a pods informer (keepalive on, its liveness check off), then takes the server's end of the
link down. Nothing answers from then on and nothing says so (no FIN, no RST): a dead node, or
a partition. Prints one JSON line: for each, how many seconds after the cut it failed, why and
how (the error's ``how``; the informer's log ``reason``), ``null`` when still waiting as the
scenario ended; or ``{"skip": reason}`` when the kernel cannot make the link. Both namespaces
vanish with the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from agent.errors import ApiConnectionLost, ApiUnavailable
from agent.k8s.api import ApiSettings, KubeApi
from agent.k8s.connection import load_configuration
from agent.k8s.informer import Informer
from agent.k8s.informer_settings import InformerSettings
from agent.k8s.keepalive import KeepAlive
from agent.k8s.lean_import import Configuration
from agent.k8s.pods import decode_pod
from agent.k8s.resources import PODS
from tests.fakes.kube_api import FakeKubeApi

CLONE_NEWNET = 0x40000000
CLIENT, SERVER = "10.250.0.1", "10.250.0.2"
SCALED = KeepAlive(idle=1, interval=1, count=2)  # a dead peer found within 3 s
WAIT = 6.0  # seconds after the cut the scenario waits for the watches to fail

libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _ip(*args: str, netns: str = "") -> None:
    command = ["ip", *args] if not netns else ["nsenter", f"--net={netns}", "ip", *args]
    subprocess.run(command, check=True, capture_output=True)


async def _quiet_watch(
    config: Configuration, keepalive: KeepAlive | None, version: str, opened: asyncio.Event
) -> tuple[float, str, str]:
    """(loop time at which the watch failed, why, how)."""
    api = KubeApi(ApiSettings(keepalive=keepalive))
    api.connect(config)
    try:
        async with api.watch(PODS, version, server_timeout=300) as stream:
            opened.set()
            try:
                event = await stream.next()
            except ApiUnavailable as err:
                how = err.how if isinstance(err, ApiConnectionLost) else ""
                return asyncio.get_running_loop().time(), err.message, how
            return asyncio.get_running_loop().time(), f"unexpected: {event!r}", ""
    finally:
        await api.close()


async def _informer_log(config: Configuration, kube: FakeKubeApi) -> tuple[float, str, str]:
    """A pods informer on a keepalive connection, its liveness check off (keepalive alone must
    find the peer): (loop time of its first pause, the ``informer.retrying`` line's error and
    reason)."""
    api = KubeApi(ApiSettings(keepalive=SCALED))
    api.connect(config)
    paused = asyncio.Event()

    async def park(seconds: float) -> None:
        paused.set()
        await asyncio.Event().wait()

    settings = InformerSettings(quiet=None, watch_timeout=(300, 300))
    informer = Informer("pods", api, PODS, decode_pod, settings=settings, sleep=park)
    task = asyncio.create_task(informer.run())
    try:
        with capture_logs() as logs:
            await paused.wait()
        line = next(entry for entry in logs if entry["event"] == "informer.retrying")
        return asyncio.get_running_loop().time(), line["error"], line["reason"]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await api.close()


async def _scenario(ours: int, theirs: int, server_ns: str) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    with tempfile.TemporaryDirectory() as workdir:
        _check(libc.setns(theirs, CLONE_NEWNET), "setns")  # the server listens over there
        kube = FakeKubeApi(Path(workdir), host=SERVER)
        await kube.up()
        _check(libc.setns(ours, CLONE_NEWNET), "setns")
        config = await load_configuration(str(kube.kubeconfig_path))
        version = str(kube.store.resource_version)
        opened = {"keepalive": asyncio.Event(), "without": asyncio.Event()}
        tasks = {
            name: asyncio.create_task(_quiet_watch(config, keepalive, version, opened[name]))
            for name, keepalive in (("keepalive", SCALED), ("without", None))
        }
        tasks["informer"] = asyncio.create_task(_informer_log(config, kube))
        try:
            for event in opened.values():
                await asyncio.wait_for(event.wait(), 10)
            await asyncio.wait_for(kube.store.wait_for_watchers("pods", 3), 10)
            _ip("link", "set", "api0", "down", netns=server_ns)
            cut = loop.time()
            await asyncio.wait(tasks.values(), timeout=WAIT)
            result: dict[str, Any] = {}
            for name, task in tasks.items():
                failed_at, why, how = task.result() if task.done() else (None, "", "")
                result[name] = None if failed_at is None else [round(failed_at - cut, 2), why, how]
            return result
        finally:
            for task in tasks.values():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await kube.down()


def main() -> None:
    ours = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    _ip("link", "set", "lo", "up")
    _check(libc.unshare(CLONE_NEWNET), "unshare")  # this thread now in the server's namespace
    theirs = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    _check(libc.setns(ours, CLONE_NEWNET), "setns")
    server_ns = f"/proc/{os.getpid()}/fd/{theirs}"
    try:
        _ip("link", "add", "agent0", "type", "veth", "peer", "name", "api0", "netns", server_ns)
    except subprocess.CalledProcessError as err:
        print(json.dumps({"skip": f"no veth pair: {err.stderr.decode().strip()}"}))
        return
    _ip("addr", "add", f"{CLIENT}/30", "dev", "agent0")
    _ip("link", "set", "agent0", "up")
    _ip("addr", "add", f"{SERVER}/30", "dev", "api0", netns=server_ns)
    _ip("link", "set", "api0", "up", netns=server_ns)
    print(json.dumps(asyncio.run(_scenario(ours, theirs, server_ns))))


if __name__ == "__main__":
    main()
