"""A guided tour of secrets-store-agent on one machine, no Kubernetes needed.

Starts an OpenBao dev server with two secrets and JWT auth, runs the agent in standalone mode
(SecretProviderClasses from a directory), publishes a volume for a pretend pod with the
``mount`` client exactly as kubelet would, shows what got mounted, then tears everything down.
Secret values are never printed: the listing shows names, modes and sizes only.

Run it through ``scripts/demo``, which prepares .venv first.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # for tests.support (the JWT signer and mount helpers)

from tests.support.jwt_signer import JwtSigner  # noqa: E402
from tests.support.mounts import force_unmount_under, mounts_under  # noqa: E402

POD, NAMESPACE, SERVICE_ACCOUNT, SPC = "demo-0", "default", "demo-sa", "demo-secrets"
ROLE, POLICY, AUDIENCE = "demo", "demo-read", "vault"
POD_UID = "0d3e0d3e-0000-4000-8000-00000000de70"
VOLUME = "secrets"
STOP_TIMEOUT_S = 10.0

SPC_YAML = """\
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: {spc}
  namespace: {namespace}
spec:
  provider: vault
  parameters:
    vaultAddress: {address}
    roleName: {role}
    vaultAuthMountPath: jwt
    audience: {audience}
    objects: |
      - objectName: db-username
        secretPath: secret/data/demo/db
        secretKey: username
      - objectName: db-password
        secretPath: secret/data/demo/db
        secretKey: password
        filePermission: 0600
      - objectName: api-key
        secretPath: secret/data/demo/api
        secretKey: key
"""


class DemoError(Exception):
    """Something went wrong; the message says what (and never contains a secret)."""


class Stopped(Exception):
    """SIGTERM or SIGHUP: unwind through the ``finally`` blocks like Ctrl-C does."""


def step(title: str) -> None:
    print(f"\n==> {title}", flush=True)


def show(text: str) -> None:
    print(textwrap.indent(text.rstrip("\n"), "    "), flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback only)
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, ""
    except OSError:
        return 0, ""


def find_bao() -> str:
    beside = Path(sys.executable).with_name("bao")
    found = str(beside) if beside.is_file() else shutil.which("bao")
    if not found:
        raise DemoError("the OpenBao binary `bao` is missing; run scripts/setup")
    return found


class Processes:
    """Children started in their own session, so Ctrl-C reaches only the demo, which then stops
    them in order (volume first, then the agent, then OpenBao)."""

    def __init__(self) -> None:
        self.running: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            process = subprocess.Popen(
                argv,
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.running.append((name, process))
        return process

    def stop(self, process: subprocess.Popen[bytes]) -> int:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return int(process.returncode)

    def stop_all(self) -> None:
        for _, process in reversed(self.running):
            self.stop(process)


class OpenBao:
    """Just enough of the OpenBao HTTP API, as the dev server's root token."""

    def __init__(self, address: str, token: str) -> None:
        self.address, self._token = address, token

    def call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 (loopback only)
            f"{self.address}/v1/{path}", data=data, method=method
        )
        request.add_header("X-Vault-Token", self._token)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                raw = response.read()
        except urllib.error.HTTPError as err:
            errors = json.loads(err.read() or b"{}").get("errors")
            raise DemoError(f"OpenBao {method} {path}: HTTP {err.code} {errors}") from None
        return json.loads(raw) if raw.strip() else {}

    def wait_healthy(self, process: subprocess.Popen[bytes], log: Path) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise DemoError(f"bao exited early:\n{log.read_text(errors='replace')[-2000:]}")
            if http_get(f"{self.address}/v1/sys/health")[0] == 200:
                return
            time.sleep(0.1)
        raise DemoError("OpenBao did not become healthy within 30 seconds")

    def kv_put(self, path: str, data: Mapping[str, str]) -> int:
        deadline = time.monotonic() + 10
        while True:
            try:
                reply = self.call("POST", f"secret/data/{path}", {"data": dict(data)})
                return int(reply["data"]["version"])
            except DemoError:
                # The dev server's KV v2 mount may still be upgrading for a moment after start.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def start_openbao(procs: Processes, work: Path) -> OpenBao:
    step("Starting OpenBao dev server")
    token = "root-" + secrets.token_hex(12)
    address = f"127.0.0.1:{free_port()}"
    log = work / "openbao.log"
    argv = [find_bao(), "server", "-dev", f"-dev-root-token-id={token}"]
    argv += [f"-dev-listen-address={address}", "-dev-no-store-token"]
    process = procs.start("openbao", argv, log)
    bao = OpenBao(f"http://{address}", token)
    bao.wait_healthy(process, log)
    print(f"    listening on {bao.address} (in-memory; gone when the demo ends)")
    return bao


def configure_openbao(bao: OpenBao, signer: JwtSigner) -> dict[str, str]:
    step("Storing two secrets in OpenBao (KV v2)")
    stored = {
        "db-username": "demo-user",
        "db-password": secrets.token_urlsafe(18),
        "api-key": secrets.token_urlsafe(24),
    }
    bao.kv_put("demo/db", {"username": stored["db-username"], "password": stored["db-password"]})
    bao.kv_put("demo/api", {"key": stored["api-key"]})
    print("    secret/demo/db   keys: username, password")
    print("    secret/demo/api  keys: key")

    step("Letting pods log in: JWT auth, a read-only policy and a role")
    bao.call("POST", "sys/auth/jwt", {"type": "jwt"})
    # In a cluster this is the API server's service-account signing key; here, a fresh RSA key.
    config = {"jwt_validation_pubkeys": [signer.public_pem], "bound_issuer": signer.issuer}
    bao.call("POST", "auth/jwt/config", config)
    policy = 'path "secret/data/demo/*" { capabilities = ["read"] }'
    bao.call("PUT", f"sys/policies/acl/{POLICY}", {"policy": policy})
    subject = f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"
    role = {
        "role_type": "jwt",
        "bound_audiences": [AUDIENCE],
        "user_claim": "sub",
        "bound_subject": subject,
        "token_policies": [POLICY],
        "token_ttl": "10m",
    }
    bao.call("POST", f"auth/jwt/role/{ROLE}", role)
    print(f"    auth/jwt role {ROLE!r}: {subject} may read secret/data/demo/*")
    return stored


def write_spc(work: Path, bao: OpenBao) -> None:
    step(f"Writing SecretProviderClass {NAMESPACE}/{SPC}")
    text = SPC_YAML.format(
        spc=SPC, namespace=NAMESPACE, address=bao.address, role=ROLE, audience=AUDIENCE
    )
    (work / f"{SPC}.yaml").write_text(text, encoding="utf-8")
    show(text)


class AgentHandle:
    def __init__(self, process: subprocess.Popen[bytes], work: Path, metrics_port: int) -> None:
        self.process, self.work, self.metrics_port = process, work, metrics_port
        self.endpoint = f"unix://{work / 'csi.sock'}"
        self.log = work / "agent.log"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "agent", *args, f"--endpoint={self.endpoint}"]
        return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False)

    def log_tail(self, lines: int = 15) -> str:
        # The agent's log is redacted (no secret values or tokens), so it is safe to show.
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def start_agent(procs: Processes, work: Path) -> AgentHandle:
    tmpfs = os.geteuid() == 0
    step("Starting the agent (standalone mode: SecretProviderClasses from a directory)")
    metrics_port, health_port = free_port(), free_port()
    argv = [
        sys.executable,
        "-m",
        "agent",
        "serve",
        f"--standalone-dir={work}",
        f"--endpoint=unix://{work / 'csi.sock'}",
        "--nodeid=demo-node",
        f"--metrics-addr=127.0.0.1:{metrics_port}",
        f"--health-addr=127.0.0.1:{health_port}",
        f"--state-dir={work / 'state'}",
        # Kubelet's --root-dir; the agent publishes only below <root>/pods/<uid>/volumes/.
        f"--kubelet-root-dir={work}",
        f"--mount-mode={'tmpfs' if tmpfs else 'directory'}",
        "--log-format-json",
    ]
    agent = AgentHandle(procs.start("agent", argv, work / "agent.log"), work, metrics_port)
    deadline = time.monotonic() + 20
    while http_get(f"http://127.0.0.1:{health_port}/readyz")[0] != 200:
        if agent.process.poll() is not None or time.monotonic() > deadline:
            raise DemoError(f"the agent did not start:\n{agent.log_tail()}")
        time.sleep(0.05)
    print(f"    CSI socket {work / 'csi.sock'}; /metrics on 127.0.0.1:{metrics_port}")
    if not tmpfs:
        print("    not root: volumes are plain directories (--mount-mode directory), not tmpfs")
    return agent


def target_path(work: Path) -> Path:
    # Kubelet's layout for a CSI inline volume. The mount client creates the volume directory
    # as kubelet does; the agent creates only ``mount`` and refuses any other path.
    return work / "pods" / POD_UID / "volumes" / "kubernetes.io~csi" / VOLUME / "mount"


def volume_args(work: Path) -> list[str]:
    """How the client names the volume: kubelet's root, the pod's UID and the volume's name."""
    return [f"--kubelet-root-dir={work}", f"--uid={POD_UID}", f"--volume={VOLUME}"]


def publish(agent: AgentHandle, signer: JwtSigner, target: Path, stored: dict[str, str]) -> None:
    step(f"Publishing the volume for pod {NAMESPACE}/{POD}, as kubelet would")
    # Kubelet hands the driver a short-lived service-account token for the SPC's audience.
    token_file = agent.work / "token"
    token = signer.sign(
        namespace=NAMESPACE, service_account=SERVICE_ACCOUNT, audience=AUDIENCE, pod_name=POD
    )
    descriptor = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(token)
    args = [f"--pod={POD}", f"--namespace={NAMESPACE}", *volume_args(agent.work)]
    args += [f"--service-account={SERVICE_ACCOUNT}", f"--spc={SPC}"]
    print(
        f"    $ python -m agent mount --pod {POD} --spc {SPC} --uid {POD_UID} "
        f"--volume {VOLUME} --token {AUDIENCE}=<file> ..."
    )
    result = agent.cli("mount", *args, f"--token={AUDIENCE}={token_file}")
    if result.returncode != 0:
        raise DemoError(f"mount failed: {result.stderr.strip()}\n{agent.log_tail()}")
    show(result.stdout)  # names, modes and sizes only (no --show-contents)
    # Prove the files hold what OpenBao stores, without printing any of it.
    for name, value in stored.items():
        if (target / name).read_text() != value:
            raise DemoError(f"{name} does not match the value stored in OpenBao")
    print("    contents match the values in OpenBao (not shown; secrets stay secret)")
    if os.geteuid() == 0:
        print(f"    mounted as: {mount_summary(target)}")


def mount_summary(target: Path) -> str:
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        for line in handle:
            left, _, right = line.partition(" - ")
            if left.split()[4] == str(target):
                return f"{right.split()[0]} ({left.split()[5]})"
    return "not a mount point"


def show_status_and_metrics(agent: AgentHandle) -> None:
    step("The pod status the agent recorded (SecretProviderClassPodStatus)")
    for path in sorted((agent.work / "status").glob("*/*.yaml")):
        print(f"    {path.relative_to(agent.work)}:")
        # Stored as JSON (valid YAML); shown as YAML, like ``kubectl get -o yaml`` would.
        show(yaml.safe_dump(json.loads(path.read_text()), sort_keys=False))

    step(f"A few lines of http://127.0.0.1:{agent.metrics_port}/metrics")
    status, body = http_get(f"http://127.0.0.1:{agent.metrics_port}/metrics")
    wanted = ("node_publish_total", "node_publish_duration_seconds_count", "node_unpublish")
    lines = [line for line in body.splitlines() if line.startswith(wanted)]
    show("\n".join(lines) if status == 200 else f"(HTTP {status})")


def unpublish(agent: AgentHandle, target: Path) -> None:
    step("Unpublishing the volume (the pod went away)")
    result = agent.cli("unmount", *volume_args(agent.work))
    if result.returncode != 0:
        raise DemoError(f"unmount failed: {result.stderr.strip()}")
    show(result.stdout)
    print(f"    target exists afterwards: {target.exists()}")


def show_logs(agent: AgentHandle) -> None:
    step("What the agent logged about it (JSON lines; secrets and tokens are redacted)")
    keep = ("node_publish.completed", "node_unpublish.completed")
    for line in agent.log.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            if event.get("event") in keep:
                show(json.dumps({k: v for k, v in event.items() if k != "target_path"}))


def run(work: Path, procs: Processes) -> None:
    signer = JwtSigner()
    bao = start_openbao(procs, work)
    stored = configure_openbao(bao, signer)
    write_spc(work, bao)
    agent = start_agent(procs, work)
    target = target_path(work)
    try:
        publish(agent, signer, target, stored)
        show_status_and_metrics(agent)
    except BaseException:
        # Best effort, and quietly: let the agent undo its own mount before it is stopped.
        if agent.process.poll() is None:
            agent.cli("unmount", *volume_args(agent.work))
        raise
    unpublish(agent, target)
    show_logs(agent)
    step("Stopping the agent and OpenBao")
    code = procs.stop(agent.process)
    if code != 0:
        raise DemoError(f"the agent exited with {code}:\n{agent.log_tail()}")
    procs.stop_all()
    print("    stopped; the agent removed its socket:", not (work / "csi.sock").exists())


@contextlib.contextmanager
def signals_unwind() -> Iterator[None]:
    def raise_stopped(signum: int, _frame: FrameType | None) -> None:
        raise Stopped(signal.Signals(signum).name)

    previous = {s: signal.signal(s, raise_stopped) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="ssa-demo-"))
    procs = Processes()
    try:
        with signals_unwind():
            try:
                run(work, procs)
            finally:
                procs.stop_all()
                # Only if something failed half-way: never leave a tmpfs behind.
                force_unmount_under(str(work))
                shutil.rmtree(work, ignore_errors=True)
    except KeyboardInterrupt:
        print("\ninterrupted; everything the demo started was stopped and removed")
        return 130
    except Stopped as stop:
        print(f"\n{stop}; everything the demo started was stopped and removed")
        return 143
    except DemoError as err:
        print(f"\ndemo failed: {err}", file=sys.stderr)
        return 1
    if mounts_under(str(work)):
        print("demo failed: a mount was left behind", file=sys.stderr)
        return 1
    print("\nDone: everything was stopped and the temporary directory removed.")
    print("Next: README.md (flags, SecretProviderClass format); scripts/test runs all tests.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
