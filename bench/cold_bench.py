"""What 100 ms of idle does to a warm code path: kubelet's NodePublishVolumeRequest (the
kubelet benchmark's in-process case, 429 bytes) decoded by betterproto2, timed at once after
another decode (warm), after 100 ms of busy-waiting (the vCPU never halts; only what other
work on the host evicts meanwhile is lost), and after 100 ms of sleep (the vCPU halts and must
be woken too), ``--decodes`` in a row. Separates the two costs a paced publish pays on a VM:
waking a halted vCPU, and refetching code and data the host evicted.

``python -m bench.cold_bench --rounds 40``
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

from agent._proto.csi import v1 as csi
from bench.kubelet_cases import request_for

IDLE_S = 0.1


def _busy_wait(seconds: float) -> None:
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        pass


def _timed(decodes: int, data: bytes) -> float:
    started = time.perf_counter()
    for _ in range(decodes):
        csi.NodePublishVolumeRequest.parse(data)
    return (time.perf_counter() - started) * 1e6


def measure(rounds: int, decodes: int) -> dict[str, float]:
    """Median µs of ``decodes`` decodes after each kind of idle."""
    request = request_for(
        "inprocess",
        "/var/lib/kubelet/pods/00000000-0000-0000-0000-000000000001/volumes/"
        "kubernetes.io~csi/secrets/mount",
        "00000000-0000-0000-0000-000000000001",
        None,
    )
    data = bytes(request)
    for _ in range(500):
        _timed(1, data)
    before: dict[str, Callable[[], None]] = {
        "warm": lambda: None,
        "after_busy_wait": lambda: _busy_wait(IDLE_S),
        "after_sleep": lambda: time.sleep(IDLE_S),
    }
    samples: dict[str, list[float]] = {name: [] for name in before}
    for _ in range(rounds):  # interleaved, so each kind sees the same machine state
        for name, idle in before.items():
            idle()
            samples[name].append(_timed(decodes, data))
    return {name: round(statistics.median(values), 1) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--decodes", type=int, nargs="+", default=[1, 2, 8])
    args = parser.parse_args()
    print(json.dumps({f"decodes={n}": measure(args.rounds, n) for n in args.decodes}, indent=1))


if __name__ == "__main__":
    main()
