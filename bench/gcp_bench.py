"""GCP provider benchmark: the agent (subprocess, real CSI socket, real tmpfs as root) with its
built-in ``gcp`` provider pointed (by its documented environment settings) at the fake Google
Cloud of ``tests/fakes/gcp.py``, which runs in this process on 127.0.0.1.

Measures, for a 10-object volume (``latest`` versions, 64-byte payloads, service-account
impersonation through the ``iam.gke.io/gcp-service-account`` annotation):

- publish latency with cached tokens (the same pod token every time: 10 ``:access`` calls);
- publish latency with a new pod token each time (STS exchange + generateAccessToken + 10
  ``:access``), i.e. a pod's first mount;
- the fake's own latency beside them: one ``:access`` from this process, and 10 concurrent;
- the same two publishes with 20 ms added to every fake response (a remote API): shows the
  objects are fetched concurrently (one round trip, not ten);
- the agent's RSS after start, with the GCP provider loaded (pod-adc), and after a ``key.json``
  mount (google-auth loaded).

Run as root for tmpfs: ``unshare -m --propagation private python -m bench.gcp_bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import aiohttp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bench.instant import launch
from bench.publish_bench import percentile, rss_mib
from tests.fakes.gcp import FakeGoogleCloud, serve
from tests.support.gcp import POOL, PROJECT, GcpWorld, new_cloud
from tests.support.jwt_signer import JwtSigner
from tests.support.kubelet import Kubelet, publish_request

GSA = "bench@proj-a.iam.gserviceaccount.com"
KEY_SA = "ci@proj-a.iam.gserviceaccount.com"
OBJECTS = 10
SPC = """\
apiVersion: v1
kind: ServiceAccount
metadata:
  name: web
  namespace: bench
  annotations: {{iam.gke.io/gcp-service-account: {gsa}}}
---
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {{name: gcp-10, namespace: bench}}
spec:
  provider: gcp
  parameters:
    secrets: |
{entries}
---
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {{name: gcp-key, namespace: bench}}
spec:
  provider: gcp
  parameters:
    secrets: |
      - {{resourceName: projects/proj-a/secrets/s0/versions/latest, fileName: s0}}
"""


def stats(samples: list[float]) -> dict[str, float]:
    return {"p50": round(statistics.median(samples), 2), "p99": round(percentile(samples, 0.99), 2)}


class Bench:
    def __init__(self, root: Path, world: GcpWorld, socket: str) -> None:
        self.root, self.world, self.socket = root, world, socket
        self.serial = 0
        self.token = world.pod_token(namespace="bench")

    def target(self) -> tuple[str, str]:
        self.serial += 1
        uid = f"pod-{self.serial:05d}"
        volume = self.root / "pods" / uid / "volumes" / "kubernetes.io~csi" / "s"
        volume.mkdir(parents=True)
        return str(volume / "mount"), uid

    async def publish(
        self,
        kubelet: Kubelet,
        *,
        new_token: bool,
        spc: str = "gcp-10",
        secrets: Mapping[str, str] | None = None,
    ) -> float:
        target, uid = self.target()
        token = self.world.pod_token(namespace="bench") if new_token else self.token
        request = publish_request(
            target,
            spc=spc,
            namespace="bench",
            uid=uid,
            service_account="web",
            tokens={POOL: token},
            secrets=secrets,
        )
        started = time.perf_counter()
        await kubelet.publish(request)
        elapsed = (time.perf_counter() - started) * 1000
        await kubelet.unpublish("v", target)
        return elapsed


async def fake_latency(cloud: FakeGoogleCloud, samples: int) -> dict[str, object]:
    """The fake's own cost, seen from this process: one access, and 10 concurrent."""
    token = cloud.state.issue(f"serviceAccount:{GSA}", 3600, time.time())
    headers = {"Authorization": f"Bearer {token}"}
    urls = [
        f"{cloud.url}/v1/projects/{PROJECT}/secrets/s{i}/versions/latest:access"
        for i in range(OBJECTS)
    ]
    single, batch = [], []
    async with aiohttp.ClientSession() as session:

        async def get(url: str) -> None:
            async with session.get(url, headers=headers) as response:
                await response.read()
                assert response.status == 200

        for _ in range(samples):
            started = time.perf_counter()
            await get(urls[0])
            single.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            await asyncio.gather(*(get(u) for u in urls))
            batch.append((time.perf_counter() - started) * 1000)
    return {"one_access_ms": stats(single), "ten_concurrent_accesses_ms": stats(batch)}


async def measure(root: Path, samples: int) -> dict[str, object]:
    signer = JwtSigner()
    async with serve(new_cloud(signer)) as cloud:
        world = GcpWorld(cloud, signer)
        for i in range(OBJECTS):
            cloud.state.add_secret_version(PROJECT, f"s{i}", os.urandom(64))
        for entry in cloud.state.secrets.values():
            entry.readers.update({f"serviceAccount:{GSA}", f"serviceAccount:{KEY_SA}"})
        cloud.state.token_creators[GSA] = {cloud.ksa_principal("bench", "web")}
        key_json = service_account_key(world)
        process, socket = start_agent(root, world)
        results: dict[str, object] = {}
        kubelet = Kubelet(socket)
        bench = Bench(root, world, socket)
        try:
            results["rss_after_start_mib"] = round(rss_mib(process.pid), 1)
            results["first_publish_after_start_ms"] = round(
                await bench.publish(kubelet, new_token=True), 2
            )
            results["rss_gcp_loaded_mib"] = round(rss_mib(process.pid), 1)
            for _ in range(20):  # warm-up
                await bench.publish(kubelet, new_token=False)
            results["fake"] = await fake_latency(cloud, samples)
            for latency in (0.0, 0.020):
                cloud.latency = latency
                label = f"fake_latency_{round(latency * 1000)}ms"
                runs = samples if not latency else max(20, samples // 5)
                warm = [await bench.publish(kubelet, new_token=False) for _ in range(runs)]
                cold = [await bench.publish(kubelet, new_token=True) for _ in range(runs)]
                results[label] = {
                    "publish_10_objects_cached_tokens_ms": stats(warm),
                    "publish_10_objects_new_pod_token_ms": stats(cold),
                }
            cloud.latency = 0.0
            await bench.publish(
                kubelet, new_token=False, spc="gcp-key", secrets={"key.json": key_json}
            )
            results["rss_after_key_json_mount_mib"] = round(rss_mib(process.pid), 1)
            results["requests_to_fake"] = len(cloud.requests)
        finally:
            await kubelet.close()
            process.terminate()
            process.wait(timeout=30)
    return results


def service_account_key(world: GcpWorld) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    world.cloud.service_account_keys[KEY_SA] = key.public_key()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    info = {
        "type": "service_account",
        "private_key": pem,
        "client_email": KEY_SA,
        "token_uri": f"{world.cloud.url}/token",
    }
    return json.dumps(info)


def start_agent(root: Path, world: GcpWorld) -> tuple[subprocess.Popen[bytes], str]:
    (root / "spc").mkdir()
    entries = "\n".join(
        f"      - {{resourceName: projects/proj-a/secrets/s{i}/versions/latest, fileName: s{i}}}"
        for i in range(OBJECTS)
    )
    (root / "spc" / "gcp.yaml").write_text(SPC.format(gsa=GSA, entries=entries))
    socket = str(root / "csi.sock")
    mode = "tmpfs" if os.geteuid() == 0 else "directory"
    command = [
        sys.executable, "-m", "agent", "serve", f"--endpoint=unix://{socket}",
        f"--standalone-dir={root / 'spc'}", f"--mount-mode={mode}", "--nodeid=bench",
        "--metrics-addr=127.0.0.1:0", "--health-addr=127.0.0.1:0", f"--state-dir={root / 'state'}",
        f"--kubelet-root-dir={root}", "--log-format-json",
    ]  # fmt: skip
    env = dict(os.environ) | world.env | {"ALLOW_NODE_PUBLISH_SECRET": "true"}
    return launch(command, root, socket, env), socket


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ssa-gcp-bench-") as directory:
        results = asyncio.run(measure(Path(directory), args.samples))
    results["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "mount_mode": "tmpfs" if os.geteuid() == 0 else "directory",
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
