"""The agent process in Kubernetes mode for end-to-end tests: the e2e flags without
``--standalone-dir``, a kubeconfig for the fake API server, and a readiness wait that never
blocks the event loop (the fake API server shares it)."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.e2e.conftest import AgentProcess

KUBE_FLAGS = ("--agent-namespace=kube-system", "--pod-cleanup-grace-period=0s")


def kubernetes_mode(command: list[str], kubeconfig: str) -> list[str]:
    flags = [arg for arg in command if not arg.startswith("--standalone-dir")]
    return [*flags, f"--kubeconfig={kubeconfig}", *KUBE_FLAGS]


async def ready(agent: AgentProcess, timeout: float = 30.0) -> None:
    """Until /readyz answers 200 (caches synced, socket serving); fails if the agent exits."""
    url = f"http://127.0.0.1:{agent.health_port}/readyz"
    async with asyncio.timeout(timeout), aiohttp.ClientSession() as session:
        while True:
            assert agent.process is not None and agent.process.poll() is None, agent.output()
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
