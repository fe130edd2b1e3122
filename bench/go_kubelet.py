"""Kubelet's own gRPC stack as the benchmark's client: ``bench/kubelet_go/main.go`` (grpc-go)
driven over pipes, with the same calls as ``tests.support.kubelet.Kubelet`` (grpcio).

Kubelet calls NodePublishVolume through grpc-go. grpcio adds its Python asyncio layer on top of
its C core, on the client's side of every figure, so ``bench/kubelet_bench.py --client go``
times the calls where kubelet would: inside a grpc-go client, around ``Invoke``, the request
already encoded (pipes and base64 stay outside the timed part).

Needs Go and grpc-go's sources from Debian (GOPATH mode, no module download):
``apt-get install golang-go golang-google-grpc-dev``.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import subprocess
from pathlib import Path
from typing import TypeVar

import betterproto2

from tests.support.kubelet import NodeCalls

SOURCE = Path(__file__).resolve().parent / "kubelet_go" / "main.go"
DEBIAN_GOPATH = Path("/usr/share/gocode")
Reply = TypeVar("Reply", bound=betterproto2.Message)


class GoKubeletError(RuntimeError):
    """A call kubelet-go reports as failed (its gRPC status text)."""


def can_build() -> bool:
    """Go and Debian's grpc-go sources are installed."""
    return (
        shutil.which("go") is not None and (DEBIAN_GOPATH / "src/google.golang.org/grpc").is_dir()
    )


def build(work: Path) -> Path:
    """Compile kubelet-go into ``work``; returns the binary. Raises RuntimeError naming the
    packages to install when Go or grpc-go's sources are missing, or with go's output."""
    go = shutil.which("go")
    if go is None or not can_build():
        raise RuntimeError(
            "--clients go/kubelet need Go and grpc-go: "
            "apt-get install golang-go golang-google-grpc-dev"
        )
    gopath = work / "gopath"
    package = gopath / "src" / "kubeletgo"
    package.mkdir(parents=True, exist_ok=True)
    shutil.copy(SOURCE, package / "main.go")
    binary = work / "kubelet-go"
    env = {
        **os.environ,
        "GOPATH": f"{gopath}{os.pathsep}{DEBIAN_GOPATH}",
        "GO111MODULE": "off",
        "GOCACHE": str(work / "gocache"),
        "GOFLAGS": "",
    }
    command = [go, "build", "-o", str(binary), "kubeletgo"]
    done = subprocess.run(command, check=False, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"building kubelet-go failed:\n{done.stderr}")
    return binary


class GoKubelet(NodeCalls):
    """One kubelet-go process connected to one CSI socket. ``last_ms``: the time the last call
    took inside grpc-go, in ms; ``last_step_ms``: kubelet's whole step around it (with the
    NodeGetCapabilities kubelet makes before a publish, per call only)."""

    def __init__(self, process: asyncio.subprocess.Process, *, per_call: bool) -> None:
        self._process = process
        self.per_call = per_call
        self.last_ms = self.last_step_ms = 0.0

    @classmethod
    async def start(cls, binary: Path, socket_path: str, *, per_call: bool) -> GoKubelet:
        """``per_call``: as kubelet's CSI client, a new connection per call (the time then
        includes the dial and HTTP/2 handshake) and a NodeGetCapabilities before each publish;
        else one connection for all, and only the calls asked for."""
        flags = ["-per-call"] if per_call else []
        process = await asyncio.create_subprocess_exec(
            str(binary), *flags, socket_path, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        return cls(process, per_call=per_call)

    async def call(
        self, service: str, rpc: str, request: betterproto2.Message, response: type[Reply]
    ) -> Reply:
        stdin, stdout = self._process.stdin, self._process.stdout
        assert stdin is not None and stdout is not None
        encoded = base64.b64encode(bytes(request)).decode()
        stdin.write(f"/csi.v1.{service}/{rpc} {encoded}\n".encode())
        await stdin.drain()
        line = (await stdout.readline()).decode()
        if not line:
            raise GoKubeletError(f"kubelet-go exited (code {await self._process.wait()})")
        call, whole, outcome, rest = line.rstrip("\n").split(" ", 3)
        self.last_ms, self.last_step_ms = int(call) / 1e6, int(whole) / 1e6
        if outcome != "OK":
            raise GoKubeletError(f"{service}/{rpc}: {rest}")
        return response.parse(base64.b64decode(rest))

    async def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        await self._process.wait()
