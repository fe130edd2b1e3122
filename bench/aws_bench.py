"""AWS benchmark: one 10-object volume (5 Secrets Manager secrets, 5 SSM parameters) against a
moto server, published through the agent's CSI socket by a grpcio client (as kubelet would)

- with the in-process AWS provider (``provider: aws``), and
- with the same provider code behind a plugin socket (``bench/aws_plugin.py``, a separate
  process, as an upstream provider DaemonSet would be),

interleaved sample by sample, next to the backend's own latency for the same AWS calls (made
directly with the provider's transport). Every sample is a new pod, so each publish includes
one STS AssumeRoleWithWebIdentity (IRSA) as well. Also reports the AWS library's import cost and
RSS (the agent's provider, and aiobotocore for comparison when it is installed).

Run as root for tmpfs: ``unshare -m --propagation private python -m bench.aws_bench``.
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
import textwrap
import time
from pathlib import Path

from agent.providers.aws.credentials import AwsCredentials
from agent.providers.aws.endpoints import SECRETS_MANAGER, SSM, AwsEnvironment
from agent.providers.aws.transport import AwsTransport
from bench.publish_bench import percentile, rss_mib
from tests.support.kubelet import Kubelet, publish_request
from tests.support.moto import MotoServer, moto_process

ROLE = "arn:aws:iam::123456789012:role/bench"
OBJECTS = "".join(
    [f"- {{objectName: bench-secret-{i}, objectType: secretsmanager}}\n" for i in range(5)]
    + [f'- {{objectName: "/bench/param-{i}", objectType: ssmparameter}}\n' for i in range(5)]
)
SPC = """\
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {{name: {name}, namespace: default}}
spec:
  provider: {provider}
  parameters:
    objects: |
{objects}
---
"""
SERVICE_ACCOUNT = f"""\
apiVersion: v1
kind: ServiceAccount
metadata:
  name: web
  namespace: default
  annotations: {{eks.amazonaws.com/role-arn: "{ROLE}"}}
"""


def seed(moto: MotoServer) -> None:
    secrets, ssm = moto.client("secretsmanager"), moto.client("ssm")
    for i in range(5):
        secrets.create_secret(Name=f"bench-secret-{i}", SecretString="s" * 1024)
        ssm.put_parameter(Name=f"/bench/param-{i}", Value="p" * 1024, Type="SecureString")


def aws_env(moto: MotoServer) -> dict[str, str]:
    return {**os.environ, "AWS_ENDPOINT_URL": moto.address, "AWS_REGION": "us-east-1"}


def wait_for(path: Path, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{path} did not appear")
        time.sleep(0.05)


def start(root: Path, moto: MotoServer) -> tuple[subprocess.Popen[bytes], ...]:
    spc, providers = root / "spc", root / "providers"
    spc.mkdir()
    providers.mkdir()
    objects = textwrap.indent(OBJECTS, "      ")
    (spc / "bench.yaml").write_text(
        SPC.format(name="in-process", provider="aws", objects=objects)
        + SPC.format(name="plugin", provider="awsplugin", objects=objects)
        + SERVICE_ACCOUNT
    )
    env = aws_env(moto)
    plugin_socket = providers / "awsplugin.sock"
    plugin = subprocess.Popen(
        [sys.executable, "-m", "bench.aws_plugin", str(plugin_socket), ROLE],
        env=env,
        stdout=(root / "plugin.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    wait_for(plugin_socket, plugin)
    mode = "tmpfs" if os.geteuid() == 0 else "directory"
    agent = subprocess.Popen(
        [
            sys.executable, "-m", "agent", f"--endpoint=unix://{root / 'csi.sock'}",
            f"--standalone-dir={spc}", f"--mount-mode={mode}", "--nodeid=bench",
            f"--provider-volume={providers}", "--additional-provider-volume-paths=",
            "--metrics-addr=127.0.0.1:0", "--health-addr=127.0.0.1:0",
            f"--state-dir={root / 'state'}", f"--kubelet-root-dir={root}", "--log-format-json",
        ],
        env=env,
        stdout=(root / "agent.log").open("wb"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    wait_for(root / "csi.sock", agent)
    return agent, plugin


class Volumes:
    def __init__(self, root: Path) -> None:
        self.root, self.serial = root, 0

    async def publish(self, kubelet: Kubelet, spc: str) -> float:
        self.serial += 1
        uid = f"pod-{self.serial:05d}"
        volume = self.root / "pods" / uid / "volumes" / "kubernetes.io~csi" / "s"
        volume.mkdir(parents=True)
        target = str(volume / "mount")
        request = publish_request(target, spc=spc, uid=uid, tokens={"sts.amazonaws.com": "t.t.t"})
        started = time.perf_counter()
        await kubelet.publish(request)
        elapsed = (time.perf_counter() - started) * 1000
        await kubelet.unpublish("v", target)
        return elapsed


async def backend(transport: AwsTransport) -> float:
    """The same calls a publish makes (STS, 5 GetSecretValue at once, 1 GetParameters), straight
    to moto with the provider's transport (kept open, as the agent keeps it): what the backend
    and the HTTP client cost."""
    params = {"RoleArn": ROLE, "RoleSessionName": "bench", "WebIdentityToken": "t.t.t"}
    started = time.perf_counter()
    issued = (await transport.assume_role_with_web_identity("us-east-1", params))["Credentials"]
    keys = AwsCredentials(issued["AccessKeyId"], issued["SecretAccessKey"], issued["SessionToken"])
    names = [f"/bench/param-{i}" for i in range(5)]
    await asyncio.gather(
        *(
            transport.call_json(
                SECRETS_MANAGER,
                "GetSecretValue",
                "us-east-1",
                {"SecretId": f"bench-secret-{i}"},
                keys,
            )
            for i in range(5)
        ),
        transport.call_json(
            SSM, "GetParameters", "us-east-1", {"Names": names, "WithDecryption": True}, keys
        ),
    )
    return (time.perf_counter() - started) * 1000


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "p50": round(statistics.median(samples), 2),
        "p99": round(percentile(samples, 0.99), 2),
    }


async def measure(
    root: Path, moto: MotoServer, samples: int, pids: tuple[int, int]
) -> dict[str, object]:
    agent_pid, plugin_pid = pids
    results: dict[str, object] = {"agent_rss_at_start_mib": round(rss_mib(agent_pid), 1)}
    volumes = Volumes(root)
    kubelet = Kubelet(str(root / "csi.sock"))
    timings: dict[str, list[float]] = {"in_process": [], "plugin": [], "backend": []}
    transport = AwsTransport(AwsEnvironment.from_env(aws_env(moto)))
    try:
        results["first_aws_publish_ms"] = round(await volumes.publish(kubelet, "in-process"), 2)
        for _ in range(10):  # warm-up of both paths
            await volumes.publish(kubelet, "in-process")
            await volumes.publish(kubelet, "plugin")
            await backend(transport)
        for _ in range(samples):  # interleaved: the machine's drift hits all three alike
            timings["in_process"].append(await volumes.publish(kubelet, "in-process"))
            timings["plugin"].append(await volumes.publish(kubelet, "plugin"))
            timings["backend"].append(await backend(transport))
    finally:
        await kubelet.close()
        await transport.close()
    results["publish_10_objects_in_process_ms"] = summary(timings["in_process"])
    results["publish_10_objects_through_plugin_socket_ms"] = summary(timings["plugin"])
    results["backend_calls_for_the_volume_ms"] = summary(timings["backend"])
    hop = [p - i for p, i in zip(timings["plugin"], timings["in_process"], strict=True)]
    results["plugin_hop_ms"] = summary(hop)
    results["agent_rss_after_aws_mounts_mib"] = round(rss_mib(agent_pid), 1)
    results["plugin_process_rss_mib"] = round(rss_mib(plugin_pid), 1)
    return results


LIBRARY_COST = """
import asyncio, gc, json, sys, time
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
import aiohttp, agent.app  # what every agent process has loaded anyway
gc.collect(); base = rss()
mode, endpoint = sys.argv[1], sys.argv[2]
started = time.perf_counter()
if mode == "agent":
    from agent.model import PodIdentity, ProviderRequest, ServiceAccountToken
    from agent.providers.aws import AwsProvider
    from agent.providers.aws.identity import ROLE_ARN_ANNOTATION
    class OneRole:
        async def annotations(self, namespace, name):
            return {ROLE_ARN_ANNOTATION: "%(role)s"}
    imported = time.perf_counter() - started
    async def run():
        provider = AwsProvider(service_accounts=OneRole(),
                               env={"AWS_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1"})
        tokens = {"sts.amazonaws.com": ServiceAccountToken("t.t.t")}
        pod = PodIdentity("default", "p", "u", "web", tokens)
        request = ProviderRequest({"objects": %(objects)r}, {}, pod, "/t")
        started = time.perf_counter()
        await provider.mount(request)
        first = time.perf_counter() - started
        laps = []
        for _ in range(50):
            started = time.perf_counter(); await provider.mount(request)
            laps.append(time.perf_counter() - started)
        await provider.close()
        return first, sorted(laps)[25]
else:
    import aiobotocore.session
    imported = time.perf_counter() - started
    async def run():
        session = aiobotocore.session.get_session()
        keys = dict(region_name="us-east-1", endpoint_url=endpoint,
                    aws_access_key_id="a", aws_secret_access_key="b")
        started = time.perf_counter()
        async with session.create_client("sts", **keys) as sts, \\
                session.create_client("secretsmanager", **keys) as sm, \\
                session.create_client("ssm", **keys) as ssm:
            # Credentials once, as the agent caches them: the laps fetch the volume only.
            await sts.assume_role_with_web_identity(
                RoleArn="%(role)s", RoleSessionName="bench", WebIdentityToken="t.t.t")
            async def volume():
                await asyncio.gather(
                    *(sm.get_secret_value(SecretId=f"bench-secret-{i}") for i in range(5)),
                    ssm.get_parameters(Names=[f"/bench/param-{i}" for i in range(5)],
                                       WithDecryption=True))
            await volume()
            first = time.perf_counter() - started
            laps = []
            for _ in range(50):
                started = time.perf_counter(); await volume()
                laps.append(time.perf_counter() - started)
        return first, sorted(laps)[25]
gc.collect(); after_import = rss()
first, median = asyncio.run(run())
gc.collect()
print(json.dumps({"import_ms": round(imported * 1000, 1),
                  "rss_after_import_mib": round(after_import - base, 1),
                  "rss_after_fetching_mib": round(rss() - base, 1),
                  "first_volume_ms": round(first * 1000, 1),
                  "volume_p50_ms": round(median * 1000, 2)}))
"""


def library_cost(moto: MotoServer) -> dict[str, object]:
    """Import time and RSS above an agent that has loaded nothing of AWS, per library, and the
    latency of the volume's calls with each (fresh interpreters, one after the other). The first
    volume includes STS and the lazy loading; the laps reuse the credentials, as the agent does
    for a pod whose token has not changed."""
    script = LIBRARY_COST % {"role": ROLE, "objects": OBJECTS}
    found: dict[str, object] = {}
    for mode in ("agent", "aiobotocore"):
        done = subprocess.run(
            [sys.executable, "-c", script, mode, moto.address],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            found[mode] = f"not measured: {done.stderr.strip().splitlines()[-1]}"
        else:
            found[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    with moto_process() as moto, tempfile.TemporaryDirectory(prefix="ssa-aws-bench-") as tmp:
        seed(moto)
        root = Path(tmp)
        agent, plugin = start(root, moto)
        try:
            results = asyncio.run(measure(root, moto, args.samples, (agent.pid, plugin.pid)))
        finally:
            for process in (agent, plugin):
                process.terminate()
                process.wait(timeout=30)
        results["aws_library"] = library_cost(moto)
    results["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "mount_mode": "tmpfs" if os.geteuid() == 0 else "directory",
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
