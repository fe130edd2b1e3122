"""Packaging benchmark: how each way of shipping the agent starts, weighs and serves.

For every candidate (a command that behaves like ``secrets-store-agent``), in interleaved
rounds: the wall time of ``--version``; the time from exec until ``/readyz`` answers 200 in
standalone mode; the RSS of the whole process tree (a one-file bootloader and its child) once
ready; the first publish of a Vault volume through the CSI socket (a grpcio client, as kubelet)
against a real OpenBao dev server, which is when the Vault provider's libraries are imported;
and the tree's RSS after it. Run as root for tmpfs, in a private mount namespace:

    unshare -m --propagation private python -m bench.packaging_bench \\
        --candidate venv="python -m agent" --candidate onefile=dist/secrets-store-agent
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import signal
import statistics
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.jwt_signer import JwtSigner
from tests.support.kubelet import Kubelet, publish_request
from tests.support.openbao import BaoAdmin, OpenBaoServer, dev_server, free_port

SPC = """\
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {{name: bench, namespace: default}}
spec:
  provider: vault
  parameters:
    vaultAddress: {address}
    roleName: {role}
    vaultAuthMountPath: {mount}
    audience: vault
    objects: |
      - {{objectName: password, secretPath: {kv}/data/app/db, secretKey: password}}
"""


@dataclass(frozen=True)
class Vault:
    server: OpenBaoServer
    signer: JwtSigner
    spc: str


def setup_vault(server: OpenBaoServer) -> Vault:
    admin, signer = BaoAdmin(server), JwtSigner()
    kv = admin.enable_kv(2)
    admin.kv_put(kv, "app/db", {"password": "bench-value"}, version=2)
    policy = admin.write_policy("bench-read", {f"{kv}/data/app/*": ["read"]})
    mount = admin.enable_jwt_auth(signer)
    role = admin.write_jwt_role(
        mount, "web", audience="vault", namespace="default", service_account="web",
        policies=[policy],
    )  # fmt: skip
    return Vault(server, signer, SPC.format(address=server.address, role=role, mount=mount, kv=kv))


def tree_rss_mib(pid: int) -> float:
    """VmRSS of ``pid`` and all its descendants (a one-file bootloader forks the interpreter)."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        status = Path(f"/proc/{current}/status").read_text()
        total += next(int(line.split()[1]) for line in status.splitlines() if "VmRSS" in line)
        children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        pending.extend(int(child) for child in children)
    return total / 1024


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def serving(command: list[str], root: Path) -> Iterator[tuple[subprocess.Popen[bytes], float, int]]:
    """Start ``serve``; yield (process, seconds until ready, health port); SIGTERM at the end."""
    health = free_port()
    argv = [*command, "serve", f"--standalone-dir={root}", f"--endpoint=unix://{root}/csi.sock",
            f"--health-addr=127.0.0.1:{health}", f"--metrics-addr=127.0.0.1:{free_port()}",
            f"--state-dir={root}/state", "--nodeid=bench", "--log-format-json",
            f"--kubelet-root-dir={root}"]  # fmt: skip
    log = open(root / "agent.log", "ab")  # noqa: SIM115 - closed below
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        while not ready(health):
            if process.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited: {(root / 'agent.log').read_text()[-2000:]}")
            time.sleep(0.005)
        yield process, time.perf_counter() - started, health
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        log.close()


async def publish_once(root: Path, vault: Vault) -> float:
    target = root / "pods" / "uid-1" / "volumes" / "kubernetes.io~csi" / "secrets" / "mount"
    target.parent.mkdir(parents=True, exist_ok=True)
    token = vault.signer.sign(namespace="default", service_account="web", audience="vault")
    kubelet = Kubelet(str(root / "csi.sock"))
    try:
        request = publish_request(str(target), spc="bench", uid="uid-1", tokens={"vault": token})
        started = time.perf_counter()
        await kubelet.publish(request)
        elapsed = time.perf_counter() - started
        if (target / "password").read_text() != "bench-value":
            raise RuntimeError("published content differs from the secret")
        await kubelet.unpublish(request.volume_id, str(target))
        return elapsed
    finally:
        await kubelet.close()


def measure(command: list[str], vault: Vault) -> dict[str, float]:
    started = time.perf_counter()
    subprocess.run([*command, "--version"], check=True, capture_output=True)
    version_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="ssa-pkg-", dir="/tmp") as tmp:
        root = Path(tmp)
        (root / "bench.yaml").write_text(vault.spc)
        with serving(command, root) as (process, ready_s, _):
            rss_ready = tree_rss_mib(process.pid)
            publish_s = asyncio.run(publish_once(root, vault))
            rss_published = tree_rss_mib(process.pid)
    return {
        "--version (s)": version_s,
        "exec → /readyz (s)": ready_s,
        "RSS ready (MiB)": rss_ready,
        "first publish (ms)": publish_s * 1000,
        "RSS after publish (MiB)": rss_published,
    }


def size_mib(command: list[str]) -> str:
    path = Path(command[0])
    return f"{path.stat().st_size / 2**20:.1f}" if path.is_file() and len(command) == 1 else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--candidate", action="append", required=True, metavar="NAME=COMMAND")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    candidates = {
        name: shlex.split(command)
        for name, _, command in (item.partition("=") for item in args.candidate)
    }
    results: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    with dev_server() as server:
        vault = setup_vault(server)
        for _ in range(args.rounds):  # interleaved: machine drift hits every candidate alike
            for name, command in candidates.items():
                for key, value in measure(command, vault).items():
                    results[name][key].append(value)
    keys = list(next(iter(results.values())))
    print("| candidate | file (MiB) | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 2) + "|")
    for name, measured in results.items():
        cells = [
            f"{statistics.median(v):.2f} ({min(v):.2f}-{max(v):.2f})" for v in measured.values()
        ]
        print(f"| {name} | {size_mib(candidates[name])} | " + " | ".join(cells) + " |")
    print(f"\nmedian (min-max) of {args.rounds} interleaved rounds; pid {os.getpid()}")


if __name__ == "__main__":
    main()
