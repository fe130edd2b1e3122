"""Import cost of Kubernetes mode, per dependency: RSS and wall time, each step in a fresh
interpreter that has already imported the agent as standalone mode does (``agent.app``).

``python -m bench.import_cost`` prints a Markdown table. Steps are cumulative in the order a
Kubernetes-mode start imports them, so each row is what that dependency adds.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

STEPS = [
    ("urllib3 (kubernetes_asyncio configuration)", "import urllib3"),
    ("six", "import six"),
    ("python-dateutil (api_client)", "import dateutil.parser"),
    ("multiprocessing.pool (api_client)", "import multiprocessing.pool"),
    ("kubernetes_asyncio config + REST client (lean)", "import agent.k8s.lean_import"),
    ("agent.k8s (the adapter)", "import agent.k8s.adapter"),
]
FULL = (
    "for comparison: `import kubernetes_asyncio.client` (what the lean import avoids)",
    "import kubernetes_asyncio.client",
)

PROBE = """
import json, sys, time
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024
import agent.app
for code in {before!r}:
    exec(code)
base, started = rss(), time.perf_counter()
exec({code!r})
print(json.dumps({{"rss": rss() - base, "seconds": time.perf_counter() - started, "base": base}}))
"""


def measure(code: str, before: list[str], runs: int = 5) -> tuple[float, float, float]:
    samples = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", PROBE.format(code=code, before=before)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        samples.append(json.loads(out))
    return (
        statistics.median(s["rss"] for s in samples),
        statistics.median(s["seconds"] for s in samples),
        statistics.median(s["base"] for s in samples),
    )


def main() -> None:
    print("| dependency | RSS added (MiB) | import time (ms) |")
    print("| --- | --- | --- |")
    before: list[str] = []
    total_rss = total_s = 0.0
    base = 0.0
    for label, code in STEPS:
        rss, seconds, base_now = measure(code, before)
        base = base or base_now
        total_rss, total_s = total_rss + rss, total_s + seconds
        print(f"| {label} | {rss:.1f} | {seconds * 1000:.0f} |")
        before.append(code)
    print(f"| **Kubernetes mode in total** | **{total_rss:.1f}** | **{total_s * 1000:.0f}** |")
    rss, seconds, _ = measure(FULL[1], [])
    print(f"| {FULL[0]} | {rss:.1f} | {seconds * 1000:.0f} |")
    print(f"\nbaseline (`import agent.app`, standalone mode): {base:.1f} MiB")


if __name__ == "__main__":
    main()
