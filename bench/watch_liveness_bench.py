"""What the watch liveness check (``agent.k8s.watch_liveness``) costs and buys, time-scaled.

Every duration the agent uses is divided by ``--scale`` (100: the quiet limit of 60 to 75 s
becomes 0.6 to 0.75 s, the server's watch timeout of 5 to 10 minutes 3 to 6 s, the request
timeout of 10 s 0.1 s), against the fake API server over real HTTP on loopback; results are
multiplied back. Two measures:

- requests per hour of a pods informer whose resource nobody writes, with the check (the
  defaults) and without it (the agent before it), both running side by side for one scaled
  hour;
- time to detect a watch stream that stopped while its connection stays open: a server that
  hangs (new requests unanswered too; measured until the informer reports the watch failing)
  and a proxy that stopped forwarding (new requests answered; measured until a pod deleted
  just after the stop is seen).

``python -m bench.watch_liveness_bench --scale 100 --trials 10``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import structlog

from agent.aio.backoff import BackoffPolicy
from agent.k8s.api import ApiSettings, KubeApi
from agent.k8s.connection import load_configuration
from agent.k8s.informer import Informer
from agent.k8s.informer_settings import InformerSettings
from agent.k8s.pods import decode_pod
from agent.k8s.resources import PODS
from agent.k8s.watch_liveness import QuietLimit
from agent.model import PodInfo
from tests.fakes.kube_api import FakeKubeApi, pod


def _settings(scale: float, quiet: bool) -> InformerSettings:
    defaults = InformerSettings()
    low, high = defaults.watch_timeout
    limit = QuietLimit()
    return InformerSettings(
        backoff=BackoffPolicy(initial=1.0 / scale, maximum=30.0 / scale),
        watch_timeout=(round(low / scale), round(high / scale)),
        read_margin=defaults.read_margin / scale,
        quiet=QuietLimit(limit.seconds / scale, limit.jitter) if quiet else None,
    )


@contextlib.asynccontextmanager
async def _informer(
    kube: FakeKubeApi, node: str, scale: float, quiet: bool = True
) -> AsyncIterator[Informer[PodInfo]]:
    api = KubeApi(ApiSettings(request_timeout=ApiSettings().request_timeout / scale))
    api.connect(await load_configuration(str(kube.kubeconfig_path)))
    informer = Informer(
        node, api, PODS, decode_pod, selectors={"fieldSelector": f"spec.nodeName={node}"},
        settings=_settings(scale, quiet),
    )  # fmt: skip
    task = asyncio.create_task(informer.run())
    try:
        await informer.wait_synced()
        yield informer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await api.close()


async def _wait(condition: Callable[[], bool]) -> None:
    """Poll (2 ms) a state the informer changes without telling anyone."""
    while not condition():  # noqa: ASYNC110
        await asyncio.sleep(0.002)


async def requests_per_hour(kube: FakeKubeApi, scale: float) -> dict[str, dict[str, float]]:
    async with _informer(kube, "quiet-on", scale), _informer(kube, "quiet-off", scale, False):
        mark = kube.requests.mark()
        await asyncio.sleep(3600 / scale)
    counts: dict[str, dict[str, float]] = {}
    for node in ("quiet-on", "quiet-off"):
        sent = [
            r
            for r in kube.requests.since(mark, resource="pods")
            if r.query.get("fieldSelector") == f"spec.nodeName={node}"
        ]
        counts[node] = {
            "watch": sum(r.verb == "watch" for r in sent),
            "list": sum(r.verb == "list" for r in sent),
        }
    return counts


async def detection(kube: FakeKubeApi, scale: float, trials: int) -> dict[str, list[float]]:
    """Seconds (scaled back) from the stop to the informer's reaction, per trial."""
    loop = asyncio.get_running_loop()
    found: dict[str, list[float]] = {"hung server": [], "stuck proxy": []}
    for trial in range(trials):
        node = f"trial-{trial}"
        kube.store.put(pod("web-0", node=node, namespace=node))
        async with _informer(kube, node, scale) as informer:
            await kube.store.wait_for_watchers("pods")
            # Stop anywhere in the quiet limit (jitter, not secrets).
            await asyncio.sleep(random.uniform(0, 0.75) * 60 / scale)  # noqa: S311
            hung = trial % 2 == 0
            hold = kube.faults.hold(times=None) if hung else None
            kube.store.freeze_watches("pods")
            kube.store.delete("pods", node, "web-0")
            stopped = loop.time()
            if hold is not None:
                await _wait(lambda: informer.problem() != "")
                kube.faults.remove(hold)
                hold.release()
            else:
                await _wait(lambda: not informer.items)
            found["hung server" if hung else "stuck proxy"].append((loop.time() - stopped) * scale)
    return found


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=100.0)
    parser.add_argument("--trials", type=int, default=10)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    with tempfile.TemporaryDirectory() as workdir:
        async with FakeKubeApi.running(Path(workdir)) as kube:
            counts = await requests_per_hour(kube, args.scale)
            found = await detection(kube, args.scale, args.trials)
    for node, sent in counts.items():
        print(f"{node}: per hour {sent['watch']:.0f} watches, {sent['list']:.0f} lists")
    for case, seconds in found.items():
        print(
            f"{case}: detected in {min(seconds):.0f} / {statistics.median(seconds):.0f} / "
            f"{max(seconds):.0f} s (min / median / max of {len(seconds)})"
        )


if __name__ == "__main__":
    asyncio.run(main())
