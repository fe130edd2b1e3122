"""The tests' fake API server (``tests/fakes/kube_api.py``) in a process of its own, as
kube-apiserver is not in kubelet's process: the benchmark's client (kubelet) then shares no
event loop and no GIL with the server that receives the agent's writes.

The benchmark drives it over a pipe: seed or delete objects, and read back which requests
arrived when. Arrival times are ``time.perf_counter()`` in the server's process; on Linux that
is ``CLOCK_MONOTONIC``, one clock for every process, so they compare with the benchmark's own.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from tests.fakes.kube_api import FakeKubeApi, RecordedRequest, RequestLog

Object = dict[str, Any]
STATUSES = "secretproviderclasspodstatuses"


@dataclass(frozen=True)
class Arrival:
    """One request as the server received it (after its body was read)."""

    at: float  # perf_counter seconds, comparable across processes (see above)
    verb: str  # Kubernetes verb: get, list, watch, create, patch, delete...
    resource: str  # pods, secretproviderclasses, secretproviderclasspodstatuses...
    name: str
    pod: str  # status.podName of a SecretProviderClassPodStatus body, else ""
    status: int  # HTTP status sent (0 while a watch streams)


class _StampedLog(RequestLog):
    def __init__(self) -> None:
        super().__init__()
        self.stamps: list[tuple[float, RecordedRequest]] = []

    def record(self, entry: RecordedRequest) -> None:
        self.stamps.append((time.perf_counter(), entry))
        super().record(entry)

    def arrivals(self) -> list[Arrival]:
        return [_arrival(at, entry) for at, entry in self.stamps]


def _arrival(at: float, entry: RecordedRequest) -> Arrival:
    body = entry.body if isinstance(entry.body, dict) else {}
    status = body.get("status")
    pod = str(status.get("podName", "")) if isinstance(status, dict) else ""
    return Arrival(at, entry.verb, entry.resource, entry.info.name, pod, entry.status)


class KubeApiProcess:
    """The fake API in a child process; ``kubeconfig`` points a client at it."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a process with threads
        self._conn, child = context.Pipe()
        self._workdir = tempfile.TemporaryDirectory(prefix="ssa-kube-")
        self._process = context.Process(
            target=_serve, args=(self._workdir.name, child), name="fake-kube-api", daemon=True
        )
        self._process.start()
        child.close()
        self.kubeconfig = Path(self._call("kubeconfig"))

    def put(self, obj: Object) -> None:
        """Create or replace ``obj`` (``Cluster.put``: watches see it)."""
        self._call("put", obj)

    def delete(self, resource: str, namespace: str, name: str) -> None:
        """Delete at once (grace period 0), if it exists."""
        self._call("delete", resource, namespace, name)

    def statuses_written(self, pods: list[str], verb: str) -> set[str]:
        """Which of ``pods`` had a SecretProviderClassPodStatus ``verb`` (create, delete)
        arrive; a status is named ``<pod>-<namespace>-<class>``."""
        found: set[str] = self._call("statuses_written", pods, verb)
        return found

    def arrivals(self) -> list[Arrival]:
        """Every request received so far, oldest first."""
        found: list[Arrival] = self._call("arrivals")
        return found

    def close(self) -> None:
        try:
            self._call("stop")
        finally:
            self._process.join(10)
            if self._process.is_alive():
                self._process.kill()
            self._workdir.cleanup()

    def _call(self, command: str, *args: Any) -> Any:
        self._conn.send((command, args))
        ok, value = self._conn.recv()
        if not ok:
            raise RuntimeError(f"fake API: {command} failed: {value}")
        return value


def _serve(workdir: str, conn: Connection) -> None:
    asyncio.run(_run(Path(workdir), conn))


async def _run(workdir: Path, conn: Connection) -> None:
    stopped = asyncio.Event()
    async with FakeKubeApi.running(workdir) as kube:
        log = kube.requests = _StampedLog()

        def answer() -> None:
            command, args = conn.recv()
            try:
                value = _execute(kube, log, command, args)
            except Exception as error:  # sent back to the benchmark, which raises it
                conn.send((False, repr(error)))
                return
            conn.send((True, value))
            if command == "stop":
                stopped.set()

        loop = asyncio.get_running_loop()
        loop.add_reader(conn.fileno(), answer)
        await stopped.wait()
        loop.remove_reader(conn.fileno())


def _execute(kube: FakeKubeApi, log: _StampedLog, command: str, args: tuple[Any, ...]) -> Any:
    if command == "kubeconfig":
        return str(kube.kubeconfig_path)
    if command == "put":
        kube.store.put(args[0])
        return None
    if command == "delete":
        resource, namespace, name = args
        if kube.store.get(resource, namespace, name) is not None:
            kube.store.delete(resource, namespace, name)
        return None
    if command == "statuses_written":
        pods, verb = args
        names = [
            a.name or a.pod for a in log.arrivals() if a.verb == verb and a.resource == STATUSES
        ]
        return {pod for pod in pods if any(n == pod or n.startswith(f"{pod}-") for n in names)}
    if command == "arrivals":
        return log.arrivals()
    if command == "stop":
        return None
    raise ValueError(f"unknown command {command!r}")
