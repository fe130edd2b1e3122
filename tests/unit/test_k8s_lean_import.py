"""The lean import of kubernetes_asyncio: config loaders and REST client without the models,
and the full client still there for anyone who asks for it."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


def test_kubernetes_mode_imports_no_generated_models_or_api_classes() -> None:
    out = _run(
        """
        import sys
        import agent.k8s.adapter
        from agent.k8s import lean_import
        loaded = [m for m in sys.modules if m.startswith("kubernetes_asyncio.client.")]
        print(lean_import.models_loaded(), any(".models." in m or ".api." in m for m in loaded))
        """
    )
    assert out == "False False"


def test_the_full_client_still_loads_on_demand_after_the_lean_import() -> None:
    out = _run(
        """
        from agent.k8s import lean_import
        import kubernetes_asyncio.client as client
        print(client.CoreV1Api.__name__, client.V1Pod.__name__, lean_import.models_loaded())
        """
    )
    assert out == "CoreV1Api V1Pod True"
