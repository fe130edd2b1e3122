"""The agent process with a Windows node's rules, emulated on Linux, plus the ``instant``
provider (``tests.support.instant_agent``).

Everything Windows-specific that can run here runs: target paths ``C:\\var\\lib\\kubelet\\...``
and their rules, the path-based volume stack and per-file writer, the standard library's event
loop (``--event-loop=asyncio``) and the portable stop-signal path a Windows loop needs. The
kubelet root ``C:\\var\\lib\\kubelet`` lives in ``$SSA_EMULATED_KUBELET_ROOT``. Usage:
``python -m tests.support.windows_agent <serve flags>``.
"""

from __future__ import annotations

import dataclasses
import os
import sys

from agent.app import run
from agent.flags import parse_settings
from agent.platform import emulated_windows
from agent.providers.registry import ProviderContext, ProviderRegistry
from agent.targets import WINDOWS_KUBELET_ROOT
from tests.support.instant_agent import InstantProvider

LOCAL_ROOT_VARIABLE = "SSA_EMULATED_KUBELET_ROOT"


def main() -> int:
    settings, _ = parse_settings(sys.argv[1:])
    settings = dataclasses.replace(settings, kubelet_root_dir=WINDOWS_KUBELET_ROOT)
    provider = InstantProvider()

    def instant(_context: ProviderContext) -> InstantProvider:
        return provider

    registry = ProviderRegistry(
        timeout=settings.provider_timeout, version_key=b"win" * 11, load_entry_points=False
    )
    registry.register("instant", instant)
    return run(settings, registry, emulated_windows(os.environ[LOCAL_ROOT_VARIABLE]))


if __name__ == "__main__":
    sys.exit(main())
