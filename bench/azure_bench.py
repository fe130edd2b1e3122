"""Azure benchmark: 10-object volume publishes through the real agent's built-in ``azure``
provider against the fake Key Vault and Entra (TLS, test CA), with the fake's own latency
beside them, and the agent's RSS before and after the provider (and cryptography) load.

The agent runs as a subprocess (``python -m agent``), configured only the operator's way:
``AZURE_ENVIRONMENT_FILEPATH`` (a custom cloud pointing at the fakes on ``*.localhost``) and
``SSL_CERT_FILE``. The fakes run in this process, on its event loop, as does the grpcio client
that plays kubelet; every sample is a first publish of a new volume (tmpfs as root), with the
pod's token reused as kubelet reuses it, so the access token comes from the agent's cache.
Run: ``unshare -m --propagation private python -m bench.azure_bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import aiohttp

from agent.providers.azure.content import CONTENT_TYPE_PFX
from bench.publish_bench import percentile, rss_mib
from tests.fakes.azure_entra import EXCHANGE_AUDIENCE
from tests.fakes.azure_keyvault import jwk_of
from tests.support.azure import (
    NAMESPACE,
    POD,
    SERVICE_ACCOUNT,
    TENANT,
    VAULT,
    WI_CLIENT,
    AzureWorld,
    azure_world,
    objects_parameter,
)
from tests.support.jwt_signer import JwtSigner
from tests.support.kubelet import Kubelet, publish_request
from tests.support.pki import chain, ec_key, pfx, server_tls

SPC = """\
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  provider: azure
  parameters:
    keyvaultName: {vault}
    tenantID: {tenant}
    clientID: {client}
    cloudName: AzureStackCloud
    objects: |
{objects}
"""
SECRETS = [{"objectName": f"secret-{i}", "objectType": "secret"} for i in range(10)]
MIXED = [
    *SECRETS[:7],
    {"objectName": "tls", "objectType": "secret", "objectAlias": "tls.pem"},
    {"objectName": "tls", "objectType": "cert", "objectAlias": "tls.crt"},
    {"objectName": "signing", "objectType": "key"},
]


def stats(samples: list[float]) -> dict[str, float]:
    return {"p50": round(statistics.median(samples), 2), "p99": round(percentile(samples, 0.99), 2)}


def rounds(samples: int, size: int = 10) -> list[int]:
    """Round sizes for interleaved runs: ``samples`` in all, at most ``size`` per round (so
    ``--samples 5`` is one round of 5, not zero rounds and an empty median)."""
    full, rest = divmod(samples, size)
    return [size] * full + ([rest] if rest else [])


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def fill_vault(world: AzureWorld) -> None:
    for i in range(10):
        world.vault.add_secret(f"secret-{i}", f"value-{i:02d}-" + "x" * 200)
    c = chain("bench.example.com")
    value = base64.b64encode(
        pfx(c.leaf.key, c.leaf.certificate, [c.intermediate.certificate, c.root.certificate])
    )
    world.vault.add_certificate(
        "tls", der=c.leaf.der, secret_value=value.decode(), content_type=CONTENT_TYPE_PFX
    )
    world.vault.add_key("signing", jwk_of(ec_key().public_key()))


def start_agent(root: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    spc_dir = root / "spc"
    spc_dir.mkdir()
    for name, objects in (("azure-secrets", SECRETS), ("azure-mixed", MIXED)):
        text = SPC.format(
            name=name, namespace=NAMESPACE, vault=VAULT, tenant=TENANT, client=WI_CLIENT,
            objects=textwrap.indent(objects_parameter(objects), " " * 6),
        )  # fmt: skip
        (spc_dir / f"{name}.yaml").write_text(text)
    socket = str(root / "csi.sock")
    mode = "tmpfs" if os.geteuid() == 0 else "directory"
    command = [
        sys.executable, "-m", "agent", f"--endpoint=unix://{socket}", f"--standalone-dir={spc_dir}",
        f"--mount-mode={mode}", "--nodeid=bench", "--metrics-addr=127.0.0.1:0",
        "--health-addr=127.0.0.1:0", f"--state-dir={root / 'state'}", "--log-format-json",
        f"--kubelet-root-dir={root}",
    ]  # fmt: skip
    log = (root / "agent.log").open("wb")
    process = subprocess.Popen(command, stdout=log, env={**os.environ, **env})
    deadline = time.monotonic() + 20
    while not os.path.exists(socket):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("agent did not start")
        time.sleep(0.05)
    return process, socket


class Volumes:
    def __init__(self, root: Path, token: str) -> None:
        self.root, self.token, self.serial = root, token, 0

    def request(self, spc: str) -> Any:
        self.serial += 1
        volume = (
            self.root / "pods" / f"pod-{self.serial:05d}" / "volumes" / "kubernetes.io~csi" / "s"
        )
        volume.mkdir(parents=True)
        return publish_request(
            str(volume / "mount"), spc=spc, pod=POD, namespace=NAMESPACE,
            service_account=SERVICE_ACCOUNT, uid=f"pod-{self.serial:05d}",
            tokens={EXCHANGE_AUDIENCE: self.token},
        )  # fmt: skip

    async def publish_times(self, kubelet: Kubelet, spc: str, samples: int) -> list[float]:
        timings = []
        for _ in range(samples):
            request = self.request(spc)
            started = time.perf_counter()
            await kubelet.publish(request)
            timings.append((time.perf_counter() - started) * 1000)
            await kubelet.unpublish(request.volume_id, request.target_path)
        return timings


async def backend_times(world: AzureWorld, samples: int) -> dict[str, dict[str, float]]:
    """The fake alone, from this process: one GET, and ten concurrent GETs (what one publish
    asks for), over a kept-alive TLS connection with a valid token."""
    token = next(iter(world.entra.tokens))  # issued to the agent; the fake accepts it from anyone
    suffix = json.loads(world.env_file.read_text())["keyVaultDNSSuffix"]
    base = f"https://{VAULT}.{suffix}/secrets"
    import ssl

    from agent.providers.azure.transport import LocalhostResolver

    context = ssl.create_default_context(cafile=world.env["SSL_CERT_FILE"])
    connector = aiohttp.TCPConnector(ssl=context, resolver=LocalhostResolver())
    headers = {"Authorization": f"Bearer {token}"}
    one, ten = [], []
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def get(i: int) -> None:
            async with session.get(f"{base}/secret-{i}?api-version=7.4") as response:
                await response.read()

        await asyncio.gather(*(get(i) for i in range(10)))  # warm: connections open
        for _ in range(samples):
            started = time.perf_counter()
            await get(0)
            one.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            await asyncio.gather(*(get(i) for i in range(10)))
            ten.append((time.perf_counter() - started) * 1000)
    return {"one_get_ms": stats(one), "ten_concurrent_gets_ms": stats(ten)}


def agent_side(log: Path) -> dict[str, Any]:
    publish: dict[str, list[float]] = {}
    provider: list[float] = []
    for line in log.read_text().splitlines():
        event = json.loads(line)
        if event.get("event") == "node_publish.completed":
            publish.setdefault(event["spc"], []).append(float(event["duration_ms"]))
        elif event.get("event") == "azure.mount.completed":
            provider.append(float(event["duration_ms"]))
    # The first publish of each SPC (cold: imports, challenge, sign-in) is left out.
    return {spc: stats(t[1:]) for spc, t in sorted(publish.items())} | {
        "azure_provider_all_ms": stats(provider[2:])
    }


async def measure(root: Path, samples: int) -> dict[str, Any]:
    signer = JwtSigner()
    tls = server_tls(root / "tls", ("vault.localhost", "*.vault.localhost", "login.localhost"))
    async with azure_world(tls, signer, root) as world:
        fill_vault(world)
        process, socket = start_agent(root, world.env)
        results: dict[str, Any] = {"rss_after_start_mib": round(rss_mib(process.pid), 1)}
        token = signer.sign(
            namespace=NAMESPACE,
            service_account=SERVICE_ACCOUNT,
            audience=EXCHANGE_AUDIENCE,
            pod_name=POD,
            ttl=3600,
        )
        volumes, kubelet = Volumes(root, token), Kubelet(socket)
        try:
            first = await volumes.publish_times(kubelet, "azure-secrets", 1)
            results["first_azure_publish_ms"] = round(first[0], 2)
            results["rss_after_azure_secrets_mib"] = round(rss_mib(process.pid), 1)
            await volumes.publish_times(kubelet, "azure-mixed", 1)
            results["rss_after_azure_certificates_mib"] = round(rss_mib(process.pid), 1)
            await volumes.publish_times(kubelet, "azure-secrets", 20)  # warm-up
            secrets, mixed = [], []
            for size in rounds(samples):  # interleaved, so drift hits both alike
                secrets += await volumes.publish_times(kubelet, "azure-secrets", size)
                mixed += await volumes.publish_times(kubelet, "azure-mixed", size)
            results["publish_10_secrets_ms"] = stats(secrets)
            results["publish_7_secrets_pfx_cert_key_ms"] = stats(mixed)
            results["fake_key_vault"] = await backend_times(world, samples)
            results["fake_handler_ms"] = stats([s * 1000 for s in world.keyvault.handler_seconds])
            results["sign_ins"] = len(world.entra.sign_ins)
            results["rss_at_end_mib"] = round(rss_mib(process.pid), 1)
        finally:
            await kubelet.close()
            process.terminate()
            process.wait(timeout=30)
        results["agent_side_ms"] = agent_side(root / "agent.log")
    return results


def import_cost() -> dict[str, Any]:
    """RSS and time of importing the provider, then cryptography's pieces, after the agent."""
    script = textwrap.dedent(
        """
        import json, time, agent.app
        def rss():
            for line in open('/proc/self/status'):
                if line.startswith('VmRSS'):
                    return int(line.split()[1]) / 1024
        out = {}
        modules = {"azure_provider": "agent.providers.azure",
                   "cryptography_conversions": "agent.providers.azure.pkcs"}
        for label, module in modules.items():
            before, started = rss(), time.perf_counter()
            __import__(module)
            seconds = time.perf_counter() - started
            out[label] = {"mib": round(rss() - before, 1), "ms": round(seconds * 1000, 1)}
        print(json.dumps(out))
        """
    )
    runs = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", script], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(5)
    ]
    return {
        key: {
            "mib": statistics.median(r[key]["mib"] for r in runs),
            "ms": statistics.median(r[key]["ms"] for r in runs),
        }
        for key in runs[0]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=positive_int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ssa-azure-bench-") as directory:
        results = asyncio.run(measure(Path(directory), args.samples))
    results["import_cost"] = import_cost()
    results["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "mount_mode": "tmpfs" if os.geteuid() == 0 else "directory",
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
