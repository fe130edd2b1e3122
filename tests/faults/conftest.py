"""Fault tests: the agent as a subprocess, SIGKILLed at a named step (agent.crashpoints), then
restarted while a kubelet stand-in replays its retries. Root only (real tmpfs mounts)."""

from __future__ import annotations

# The e2e fixtures: a short-named root per test, every agent stopped and every mount removed.
from tests.e2e.conftest import agents  # noqa: F401
