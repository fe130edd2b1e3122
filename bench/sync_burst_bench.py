"""Secret sync in a burst of pod starts, with and without ``secretObjects``: what the sync
spends on volumes whose class names no Secret.

Each burst runs on a fresh agent in process (real CSI socket, grpcio client as kubelet, real
tmpfs as root) against a fresh fake API server over HTTP, with the in-process fake provider
and the default ``--kube-api-qps=20``, ``--kube-api-burst=30``:

- ``plain``: ``--volumes`` bare pods, each of its own class, none with ``secretObjects``;
- ``mixed``: as many, every other class syncing two Secrets (Opaque and ``kubernetes.io/tls``).

Every pod and class exists before the clock starts; the pods are then published one after the
other. Reported, from the first publish: when every publish's sync has returned
(``sync_jobs_s``), when every status write has landed (``statuses_s``) and when every Secret
exists (``secrets_s``); the sync's waits for a status object (how many, seconds summed, and
how many ran out, each a ``secret_sync.pod_status_unwritten`` line and a deferred volume);
the re-sync loop's follow-up passes; the sync calls for volumes without ``secretObjects``;
API calls on Secrets. Run as root inside ``unshare -m``:
``unshare -m --propagation private python -m bench.sync_burst_bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from agent.model import OwnerReference, SecretProviderClass, VolumeRecord
from agent.sync.syncer import SecretSyncer
from bench.secret_sync_bench import bench_provider, secret_calls, secret_objects
from tests.fakes.kube_api import FakeKubeApi
from tests.support.kube_agent import KubeHarness, eventually, run_agents

QUIET_S = 1.0  # after the last Secret: follow-up passes of statuses that landed late run


class Counted:
    """Wraps the node's status waits and syncs to count them (the agent is not changed)."""

    def __init__(self, node: KubeHarness) -> None:
        self.waits = self.ran_out = self.plain_syncs = 0
        self.waited_s = 0.0
        consumers = node.cluster.secret_consumers
        wait, pending = consumers.status_reference, consumers.status_pending

        async def status_reference(namespace: str, name: str) -> OwnerReference | None:
            started = time.perf_counter()
            found = await wait(namespace, name)
            self.waits += 1
            self.waited_s += time.perf_counter() - started
            self.ran_out += found is None and pending(namespace, name)
            return found

        consumers.status_reference = status_reference  # type: ignore[method-assign]
        jobs = node.agent.secret_sync
        assert jobs is not None and isinstance(jobs.sync, SecretSyncer)
        syncer = jobs.sync
        sync = syncer.volume_written

        async def volume_written(record: VolumeRecord, spc: SecretProviderClass) -> None:
            self.plain_syncs += not spc.secret_objects
            await sync(record, spc)

        syncer.volume_written = volume_written  # type: ignore[method-assign]


async def _publish_all(node: KubeHarness, volumes: int, mixed: bool) -> dict[str, object]:
    resync = node.agent.secret_resync
    assert resync is not None
    pods, synced = [], 0
    for i in range(volumes):
        app = f"app-{i}"
        if mixed and i % 2 == 0:
            node.add_spc(app, secret_objects=secret_objects(app))
            synced += 1
        else:
            node.add_spc(app)
        pods.append((await node.add_pod(f"{app}-0", spc=app), app))
    counted = Counted(node)
    mark, passes = node.kube.requests.mark(), resync.passes - resync.full_passes
    started = time.perf_counter()
    for pod, app in pods:
        await node.publish(pod, spc=app)
    figures: dict[str, object] = {"publish_s": round(time.perf_counter() - started, 3)}
    await node.synced()
    figures["sync_jobs_s"] = round(time.perf_counter() - started, 3)
    await node.settle()
    figures["statuses_s"] = round(time.perf_counter() - started, 3)
    await eventually(
        lambda: node.kube.store.count("secrets", "default") >= 2 * synced, "Secrets", 120.0
    )
    figures["secrets_s"] = round(time.perf_counter() - started, 3)
    await asyncio.sleep(QUIET_S)
    await node.synced()
    return figures | {
        "volumes": volumes,
        "with_secret_objects": synced,
        "status_waits": counted.waits,
        "status_waited_s": round(counted.waited_s, 1),
        "status_waits_ran_out": counted.ran_out,
        "follow_up_passes": resync.passes - resync.full_passes - passes,
        "syncs_without_secret_objects": counted.plain_syncs,
        "api_calls": secret_calls(node.kube, mark),
    }


async def burst(root: Path, volumes: int, mixed: bool) -> dict[str, object]:
    async with FakeKubeApi.running(root / "kube") as kube:
        running = run_agents(kube, root)
        agents = await anext(running)
        try:
            node = await agents.start(provider=bench_provider(), cache_sync_timeout=10.0)
            return await _publish_all(node, volumes, mixed)
        finally:
            await running.aclose()  # stops the agent and unpublishes every volume


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--volumes", type=int, default=110)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--out", default="-", help="where the JSON goes (the agent logs to stdout)")
    args = parser.parse_args()
    runs = []
    for _ in range(args.runs):
        run = {}
        for name, mixed in (("plain", False), ("mixed", True)):
            with tempfile.TemporaryDirectory(prefix="sync-burst-") as workdir:
                run[name] = asyncio.run(burst(Path(workdir), args.volumes, mixed))
        runs.append(run)
    text = json.dumps({"runs": runs}, indent=2)
    if args.out == "-":
        print(text)
    else:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
