"""Fixtures for end-to-end tests: the agent as a real subprocess (``python -m agent serve``),
driven by the real ``python -m agent mount``/``unmount`` client, against a real OpenBao dev
server, with real tmpfs mounts (root only).

Every agent started through :func:`agents` is stopped and every mount under its directory is
removed when the test ends, pass or fail; a leaked mount then fails the test loudly.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.jwt_signer import JwtSigner
from tests.support.mounts import force_unmount_under, is_root, mounts_under
from tests.support.openbao import BaoAdmin, OpenBaoServer, free_port, unique

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "default"
SERVICE_ACCOUNT = "web"
AUDIENCE = "vault"
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0

SPC_TEMPLATE = """\
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: {name}
  namespace: {namespace}
spec:
  provider: vault
  parameters:
    vaultAddress: {address}
    roleName: {role}
    vaultAuthMountPath: {auth_mount}
    audience: {audience}
    objects: |
{objects}
"""


# ---- OpenBao ----


@dataclass(frozen=True)
class VaultSetup:
    """A jwt auth mount, a KV v2 mount, a policy that may read ``<kv>/data/app/*`` (and nothing
    else) and a role for ``system:serviceaccount:default:web`` with audience ``vault``."""

    server: OpenBaoServer
    admin: BaoAdmin
    signer: JwtSigner
    jwt_mount: str
    kv: str
    role: str

    def put(self, path: str, data: Mapping[str, Any]) -> int:
        return self.admin.kv_put(self.kv, path, data, version=2)

    def secret_path(self, path: str) -> str:
        return f"{self.kv}/data/{path}"

    def jwt(self, pod_name: str = "web-0") -> str:
        return self.signer.sign(
            namespace=NAMESPACE,
            service_account=SERVICE_ACCOUNT,
            audience=AUDIENCE,
            pod_name=pod_name,
        )

    def spc_yaml(self, name: str, objects: Sequence[Mapping[str, str | int]]) -> str:
        """An SPC as people write it; ints (filePermission) become YAML octal, e.g. ``0600``."""
        lines = "\n".join(
            "- {" + ", ".join(f"{k}: {_yaml_scalar(v)}" for k, v in obj.items()) + "}"
            for obj in objects
        )
        return SPC_TEMPLATE.format(
            name=name,
            namespace=NAMESPACE,
            address=self.server.address,
            role=self.role,
            auth_mount=self.jwt_mount,
            audience=AUDIENCE,
            objects=textwrap.indent(lines, " " * 6),
        )


def _yaml_scalar(value: str | int) -> str:
    # Strings JSON-quoted (valid YAML); ints in octal with a leading 0, as upstream examples.
    return json.dumps(value) if isinstance(value, str) else f"0{value:o}"


@pytest.fixture(scope="module")
def vault(openbao: OpenBaoServer, jwt_signer: JwtSigner) -> VaultSetup:
    admin = BaoAdmin(openbao)
    kv = admin.enable_kv(2)
    policy = admin.write_policy(unique("e2e-read"), {f"{kv}/data/app/*": ["read"]})
    jwt_mount = admin.enable_jwt_auth(jwt_signer)
    role = admin.write_jwt_role(
        jwt_mount,
        unique("web"),
        audience=AUDIENCE,
        namespace=NAMESPACE,
        service_account=SERVICE_ACCOUNT,
        policies=[policy],
    )
    return VaultSetup(openbao, admin, jwt_signer, jwt_mount, kv, role)


# ---- the agent process ----


@dataclass
class AgentProcess:
    root: Path
    args: list[str]
    process: subprocess.Popen[bytes] | None = None
    metrics_port: int = field(default_factory=free_port)
    health_port: int = field(default_factory=free_port)
    env: dict[str, str] | None = None  # None: this process's environment
    # ``agent`` runs ``python -m agent serve``; another module takes serve's flags directly
    # (``tests.support.instant_agent``: the agent with an in-process provider).
    module: str = "agent"

    @property
    def socket(self) -> Path:
        return self.root / "csi.sock"

    @property
    def endpoint(self) -> str:
        return f"unix://{self.socket}"

    @property
    def stdout_path(self) -> Path:
        return self.root / "agent.stdout"

    @property
    def stderr_path(self) -> Path:
        return self.root / "agent.stderr"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            self.module,
            *(["serve"] if self.module == "agent" else []),
            f"--standalone-dir={self.root}",
            f"--endpoint={self.endpoint}",
            "--nodeid=e2e-node",
            f"--metrics-addr=127.0.0.1:{self.metrics_port}",
            f"--health-addr=127.0.0.1:{self.health_port}",
            f"--state-dir={self.root / 'state'}",
            f"--kubelet-root-dir={self.root}",
            "--log-format-json",
            "--tmpfs-size=1Mi",
            "--shutdown-grace=5s",
            *self.args,
        ]

    def start(self) -> None:
        # Files, not pipes: nobody reads a pipe while the test runs, and a full one would stall
        # the agent. Appending keeps the lines of every start for later inspection.
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.process = subprocess.Popen(
                self.command(),
                cwd=REPO,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=self.env,
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8") if self.stdout_path.exists() else ""

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8") if self.stderr_path.exists() else ""

    def output(self) -> str:
        return self.stdout() + self.stderr()

    def events(self) -> list[dict[str, Any]]:
        """Every stdout line parsed as JSON; a line that is not JSON fails the test."""
        parsed = []
        for number, line in enumerate(self.stdout().splitlines(), 1):
            try:
                parsed.append(json.loads(line))
            except ValueError:
                pytest.fail(f"agent stdout line {number} is not JSON: {line[:200]!r}")
        return parsed

    def events_named(self, name: str) -> list[dict[str, Any]]:
        return [event for event in self.events() if event.get("event") == name]

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        """Until /readyz answers 200 (the CSI socket is serving); fail early if the agent dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                pytest.fail(f"agent exited with {self.process.returncode}:\n{self.output()}")
            if self.get("health", "/readyz")[0] == 200:
                return
            time.sleep(0.05)
        pytest.fail(f"agent not ready within {timeout:g}s:\n{self.output()}")

    def get(self, port: str, path: str) -> tuple[int, str]:
        """(status, body) of a GET on the metrics or health port; (0, "") if it is not up."""
        number = self.metrics_port if port == "metrics" else self.health_port
        url = f"http://127.0.0.1:{number}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return int(response.status), response.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode(errors="replace")
        except OSError:
            return 0, ""

    def terminate(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM and wait; returns the exit code (killing it first if it does not stop)."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                pytest.fail(f"agent ignored SIGTERM for {timeout:g}s:\n{self.output()}")
        return int(self.process.returncode)

    # -- volumes --

    def target(self, pod_uid: str, volume: str = "secrets") -> Path:
        """Kubelet's target path for a CSI inline volume; its parent exists, as kubelet makes it."""
        parent = self.root / "pods" / pod_uid / "volumes" / "kubernetes.io~csi" / volume
        parent.mkdir(parents=True, exist_ok=True)
        return parent / "mount"

    def write_spc(self, name: str, text: str) -> None:
        (self.root / f"{name}.yaml").write_text(text, encoding="utf-8")

    def status_files(self) -> list[Path]:
        return sorted((self.root / "status").glob("*/*.yaml"))

    def written_status_files(self, count: int, deadline_s: float = 10.0) -> list[Path]:
        """The status files once there are ``count``: the agent writes them behind the reply,
        so right after a publish the file may still be on its way (polled, bounded)."""
        deadline = time.monotonic() + deadline_s
        while len(found := self.status_files()) != count and time.monotonic() < deadline:
            time.sleep(0.005)
        return found


@dataclass
class CliResult:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_cli(*args: str, timeout: float = 60.0) -> CliResult:
    """``python -m agent <args>`` as a separate process, the way an operator would run it."""
    argv = [sys.executable, "-m", "agent", *args]
    done = subprocess.run(
        argv, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
    )
    return CliResult(argv, done.returncode, done.stdout, done.stderr)


def mount_cli(
    agent: AgentProcess,
    target: Path,
    *,
    spc: str,
    token_file: Path,
    pod: str = "web-0",
    pod_uid: str = "",
    extra: Sequence[str] = (),
) -> CliResult:
    args = [
        "mount",
        f"--endpoint={agent.endpoint}",
        f"--target={target}",
        f"--pod={pod}",
        f"--namespace={NAMESPACE}",
        f"--service-account={SERVICE_ACCOUNT}",
        f"--spc={spc}",
        f"--token={AUDIENCE}={token_file}",
    ]
    if pod_uid:
        args.append(f"--uid={pod_uid}")
    return run_cli(*args, *extra)


def unmount_cli(agent: AgentProcess, target: Path) -> CliResult:
    return run_cli("unmount", f"--endpoint={agent.endpoint}", f"--target={target}")


class Agents:
    """Starts agents in one short-named directory (unix socket paths max out at 107 bytes)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: list[AgentProcess] = []

    def new(self, *args: str, **options: Any) -> AgentProcess:
        agent = AgentProcess(self.root, list(args), **options)
        self.started.append(agent)
        return agent

    def start(self, *args: str, **options: Any) -> AgentProcess:
        agent = self.new(*args, **options)
        agent.start()
        agent.wait_ready()
        return agent

    def stop_all(self) -> None:
        for agent in self.started:
            if agent.process is not None and agent.process.poll() is None:
                agent.process.send_signal(signal.SIGTERM)
                try:
                    agent.process.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    agent.process.kill()
                    agent.process.wait()


@pytest.fixture
def agents() -> Iterator[Agents]:
    if not is_root():
        pytest.skip("end-to-end tests mount tmpfs: run as root (in `unshare -m` to be safe)")
    root = Path(tempfile.mkdtemp(prefix="ssa-e2e-", dir="/tmp"))
    started = Agents(root)
    try:
        yield started
    finally:
        try:
            started.stop_all()
        finally:
            leaked = force_unmount_under(str(root))
            shutil.rmtree(root, ignore_errors=True)
        assert not leaked, f"test left mounts behind: {leaked}"
        assert not mounts_under(str(root))


@pytest.fixture
def token_file(agents: Agents, vault: VaultSetup) -> Path:
    """A projected service-account token for pod web-0, as kubelet would hand it over."""
    path = agents.root / "token"
    path.write_text(vault.jwt(), encoding="utf-8")
    os.chmod(path, 0o600)
    return path


def new_pod_uid() -> str:
    return str(uuid.uuid4())


@contextlib.contextmanager
def unmounted_on_exit(agent: AgentProcess, target: Path) -> Iterator[None]:
    """Unpublish through the agent even if the test body fails, so the agent cleans up itself
    (the fixture's force-unmount is only the last resort)."""
    try:
        yield
    finally:
        if agent.process is not None and agent.process.poll() is None and mounts_under(str(target)):
            unmount_cli(agent, target)
