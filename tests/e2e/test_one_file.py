"""The one-file build (``scripts/build``) as a node runs it: no Python, no libc, nothing but the
file, a kernel, ``/proc``, a writable ``/tmp`` and ``/etc/passwd``.

The file is built once per source state (scripts/build caches it by the hash of its inputs) and
run inside an otherwise empty chroot, so anything it would take from the machine (an
interpreter, a site-packages, a shared library) is missing there. A grpcio client publishes a
Vault volume through its CSI socket against the real OpenBao dev server, and an AWS volume
against moto (the bundle keeps only the botocore models the AWS provider names); loading every
built-in provider proves that the libraries they import lazily are inside the bundle.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.providers.factories import BUILTIN_FACTORIES
from tests.e2e.conftest import REPO, AgentProcess, VaultSetup, new_pod_uid
from tests.support.kubelet import Kubelet, publish_request
from tests.support.moto import MotoServer, unique
from tests.support.mounts import force_unmount_under, is_root, mounts_under

BUILD_TIMEOUT_S = 900
INSIDE = Path("/node")  # the agent's directory as the chrooted agent sees it
PROGRAM = "/secrets-store-agent"
# The only capabilities the agent keeps: mount(2) and umount2(2) need CAP_SYS_ADMIN;
# CAP_SYS_CHROOT is for this test's chroot.
CAP_SYS_CHROOT, CAP_SYS_ADMIN = 18, 21
ONLY_MOUNT_CAPABILITIES = [
    "setpriv",
    "--inh-caps=-all",
    "--ambient-caps=-all",
    "--bounding-set=-all,+sys_admin,+sys_chroot",
]


@pytest.fixture(scope="module")
def one_file() -> Path:
    """The built file (scripts/build; nearly instant when nothing changed since the last build)."""
    done = subprocess.run(
        [str(REPO / "scripts" / "build")],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, f"scripts/build failed:\n{done.stderr[-4000:]}"
    path = Path(done.stdout.strip().splitlines()[-1])
    assert path == REPO / "dist" / "secrets-store-agent"
    return path


class ChrootAgent(AgentProcess):
    """The e2e agent process (same flags as every e2e test), run from the one file inside
    ``chroot`` with no capability but CAP_SYS_ADMIN (and CAP_SYS_CHROOT): paths on its command
    line are the ones it sees (under ``/node``); ``root`` is where the test sees that directory."""

    def __init__(self, chroot: Path, *args: str, env: dict[str, str] | None = None) -> None:
        # A node's environment, not this machine's: its CA variables name files the chroot
        # does not have (AWS_CA_BUNDLE, SSL_CERT_FILE, ...).
        super().__init__(chroot / INSIDE.relative_to("/"), list(args), env=dict(env or {}))
        self.chroot = chroot

    def command(self) -> list[str]:
        interpreter, *flags = super().command()
        assert interpreter == sys.executable and flags[:2] == ["-m", "agent"]
        inside = [flag.replace(str(self.root), str(INSIDE)) for flag in flags[2:]]
        chroot = shutil.which("chroot") or "/usr/sbin/chroot"
        return [*ONLY_MOUNT_CAPABILITIES, chroot, str(self.chroot), PROGRAM, *inside]


@pytest.fixture
def chroot(request: pytest.FixtureRequest) -> Iterator[Path]:
    """An empty root with only the file, /proc, a sticky /tmp (where the bundle unpacks), root's
    /etc/passwd entry, which every node and the image's base have (libraries ask for the home
    directory), and the /etc/hosts and /etc/resolv.conf every container gets."""
    if not is_root():
        pytest.skip("chroot, /proc and tmpfs mounts need root (run under `unshare -m`)")
    one_file: Path = request.getfixturevalue("one_file")
    root = Path(tempfile.mkdtemp(prefix="ssa-onefile-", dir="/tmp"))
    for name in ("proc", "tmp", "etc", INSIDE.name):
        (root / name).mkdir()
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/sbin/nologin\n")
    (root / "etc" / "group").write_text("root:x:0:\n")
    # What the container runtime puts in every container: the agent's name resolution.
    (root / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
    (root / "etc" / "resolv.conf").write_text("nameserver 127.0.0.1\n")
    os.chmod(root / "tmp", 0o1777)  # noqa: S103 - /tmp is world-writable and sticky
    shutil.copy2(one_file, root / PROGRAM.lstrip("/"))
    subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True)
    try:
        yield root
    finally:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.umount2(os.fsencode(root / "proc"), 2)
        leaked = force_unmount_under(str(root))
        shutil.rmtree(root, ignore_errors=True)
        assert not leaked, f"test left mounts behind: {leaked}"


def run_inside(chroot: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # An empty environment as well: no PATH, no PYTHONHOME, no LD_LIBRARY_PATH to lean on.
    command = [shutil.which("chroot") or "/usr/sbin/chroot", str(chroot), PROGRAM, *args]
    return subprocess.run(command, capture_output=True, text=True, env={}, timeout=60, check=False)


def effective_capabilities(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(
        next(line for line in status.splitlines() if line.startswith("CapEff:")).split()[1], 16
    )


def test_version_is_the_package_version(chroot: Path) -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]

    done = run_inside(chroot, "--version")

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["BuildVersion"] == project["version"]
    assert os.listdir(chroot / "tmp") == [], "the bundle left its unpacked files behind"


def test_every_builtin_provider_loads_inside_the_bundle(chroot: Path) -> None:
    done = run_inside(chroot, "providers")

    assert done.returncode == 0, done.stdout + done.stderr
    loaded = {line.split()[0]: line.split()[1] for line in done.stdout.splitlines()}
    assert set(BUILTIN_FACTORIES) <= set(loaded), done.stdout
    assert {name: loaded[name] for name in BUILTIN_FACTORIES} == dict.fromkeys(
        BUILTIN_FACTORIES, "ok"
    )


async def test_standalone_publish_through_the_socket(chroot: Path, vault: VaultSetup) -> None:
    vault.put("app/db", {"password": "from-the-one-file"})
    objects: list[dict[str, str | int]] = [
        {
            "objectName": "password",
            "secretPath": vault.secret_path("app/db"),
            "secretKey": "password",
        }
    ]
    agent = ChrootAgent(chroot)
    agent.write_spc("app", vault.spc_yaml("app", objects))
    agent.start()
    try:
        agent.wait_ready()
        assert effective_capabilities(agent.pid) == 1 << CAP_SYS_ADMIN | 1 << CAP_SYS_CHROOT
        uid = new_pod_uid()
        agent.target(uid)  # kubelet makes the volume directory; the agent makes `mount`
        inside_target = (
            INSIDE / "pods" / uid / "volumes" / "kubernetes.io~csi" / "secrets" / "mount"
        )
        request = publish_request(
            str(inside_target), spc="app", uid=uid, tokens={"vault": vault.jwt()}
        )
        kubelet = Kubelet(str(agent.socket))
        try:
            await kubelet.publish(request)
            seen = chroot / inside_target.relative_to("/")
            assert (seen / "password").read_text() == "from-the-one-file"
            assert mounts_under(str(chroot / INSIDE.name)) == [str(seen)]
            await kubelet.unpublish(request.volume_id, str(inside_target))
            assert not seen.exists()
        finally:
            await kubelet.close()
        published = agent.events_named("node_publish.completed")
        assert [event["outcome"] for event in published] == ["mounted"]
    finally:
        code = agent.terminate()
    assert code == 0, agent.output()
    assert os.listdir(chroot / "tmp") == [], "the bundle left its unpacked files behind"


AWS_SPC = """\
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {{name: aws-app, namespace: default}}
spec:
  provider: aws
  parameters:
    objects: |
      - {{objectName: {secret}, objectType: secretsmanager, objectAlias: db}}
      - {{objectName: "{parameter}", objectType: ssmparameter, objectAlias: token}}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: web
  namespace: default
  annotations: {{eks.amazonaws.com/role-arn: "arn:aws:iam::123456789012:role/web"}}
"""


async def test_aws_publish_through_the_socket(chroot: Path, moto: MotoServer) -> None:
    """IRSA (STS AssumeRoleWithWebIdentity), Secrets Manager and SSM: botocore's endpoint rules,
    partitions and STS model must be in the bundle, and nothing else of its data is needed."""
    secret, parameter = unique("onefile"), f"/{unique('onefile')}/token"
    moto.client("secretsmanager").create_secret(Name=secret, SecretString="from-aws")
    moto.client("ssm").put_parameter(Name=parameter, Value="tok", Type="SecureString")
    # The operator's way to point the agent at an endpoint: the AWS SDKs' environment.
    agent = ChrootAgent(chroot, env={"AWS_ENDPOINT_URL": moto.address, "AWS_REGION": "us-east-1"})
    agent.write_spc("aws-app", AWS_SPC.format(secret=secret, parameter=parameter))
    agent.start()
    try:
        agent.wait_ready()
        uid = new_pod_uid()
        agent.target(uid)
        inside_target = INSIDE / "pods" / uid / "volumes" / "kubernetes.io~csi" / "secrets"
        inside_target /= "mount"
        request = publish_request(
            str(inside_target),
            spc="aws-app",
            uid=uid,
            tokens={"sts.amazonaws.com": "eyJ.kubelet.token"},
        )
        kubelet = Kubelet(str(agent.socket))
        try:
            await kubelet.publish(request)
            seen = chroot / inside_target.relative_to("/")
            assert (seen / "db").read_text() == "from-aws"
            assert (seen / "token").read_text() == "tok"
            await kubelet.unpublish(request.volume_id, str(inside_target))
        finally:
            await kubelet.close()
    finally:
        code = agent.terminate()
    assert code == 0, agent.output()
