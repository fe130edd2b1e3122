"""The volumes ``bench/kubelet_bench.py`` publishes, and the floors measured beside them.

Three cases, as a node has them: ``inprocess`` (10 objects of 4 KiB from the in-process
``instant`` provider), ``plugin`` (2 objects from the tests' grpcio fake plugin over its socket)
and ``vault`` (2 objects of one KV v2 secret from a real OpenBao, a new pod and so a JWT login
per publish). Each has floors the agent cannot go below, measured in the same run:

- ``probe``: an empty CSI call (Identity/Probe) through the same client and socket;
- ``tmpfs``: the same files written by Python straight into a new tmpfs (mount + writes);
- ``plugin_rpc``: the same Mount request sent straight to the plugin (grpcio);
- ``vault_bare``: the same JWT login and KV read from an aiohttp session kept alive, as the
  agent keeps one.
"""

from __future__ import annotations

import ctypes
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc

from agent._proto import v1alpha1 as pb
from agent._proto.csi import v1 as csi
from tests.support.azure import objects_parameter
from tests.support.jwt_signer import JwtSigner
from tests.support.kubelet import publish_request
from tests.support.openbao import OpenBaoServer, build_world

INPROCESS_OBJECTS, INPROCESS_SIZE = 10, 4096
PLUGIN_NAME = "fake"
PLUGIN_OBJECTS = ("db-user", "db-password")
VAULT_KEYS = ("username", "password")

_SPC = """\
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  provider: {provider}
  parameters: {parameters}
"""


def spc(name: str, namespace: str, provider: str, parameters: dict[str, str]) -> str:
    return _SPC.format(
        name=name, namespace=namespace, provider=provider, parameters=json.dumps(parameters)
    )


def plugin_parameters() -> dict[str, str]:
    objects = [{"objectName": name, "objectVersion": "v1"} for name in PLUGIN_OBJECTS]
    return {"objects": objects_parameter(objects)}


@dataclass
class VaultCase:
    """One OpenBao corner (``tests.support.openbao.build_world``): a KV v2 secret with two keys,
    a JWT role for ``team-a/app-sa``, and a signer for the pods' tokens."""

    server: OpenBaoServer
    signer: JwtSigner
    jwt_mount: str
    role: str
    secret_path: str  # <kv2>/data/team-a/db
    namespace: str
    service_account: str

    @classmethod
    def create(cls, server: OpenBaoServer) -> VaultCase:
        signer = JwtSigner()
        world = build_world(server, signer)
        world.admin.kv_put(
            world.kv2, "team-a/db", {"username": "app", "password": "s3cret-" + "x" * 24}, version=2
        )
        return cls(
            server,
            signer,
            world.jwt_mount,
            world.role,
            f"{world.kv2}/data/team-a/db",
            world.namespace,
            world.service_account,
        )

    def parameters(self) -> dict[str, str]:
        objects = "\n".join(
            f"- {{objectName: {key}, secretPath: {self.secret_path}, secretKey: {key}}}"
            for key in VAULT_KEYS
        )
        return {
            "vaultAddress": self.server.address,
            "roleName": self.role,
            "vaultAuthMountPath": self.jwt_mount,
            "objects": objects + "\n",
        }

    def jwt(self, pod: str, uid: str) -> str:
        return self.signer.sign(
            namespace=self.namespace,
            service_account=self.service_account,
            audience="vault",
            pod_name=pod,
            pod_uid=uid,
        )


def manifests(vault: VaultCase | None) -> dict[str, str]:
    """The agent's standalone directory: one SecretProviderClass per case."""
    found = {
        "inprocess.yaml": spc(
            "inprocess",
            "default",
            "instant",
            {"objectCount": str(INPROCESS_OBJECTS), "objectSize": str(INPROCESS_SIZE)},
        ),
        "plugin.yaml": spc("plugin", "default", PLUGIN_NAME, plugin_parameters()),
    }
    if vault is not None:
        found["vault.yaml"] = spc("vault", vault.namespace, "vault", vault.parameters())
    return found


def request_for(
    case: str, target: str, uid: str, vault: VaultCase | None
) -> csi.NodePublishVolumeRequest:
    """Kubelet's NodePublishVolume for a new pod ``uid`` with the case's volume."""
    pod = f"pod-{uid[-8:]}"
    if case == "vault":
        assert vault is not None
        return publish_request(
            target,
            spc="vault",
            pod=pod,
            namespace=vault.namespace,
            uid=uid,
            service_account=vault.service_account,
            tokens={"vault": vault.jwt(pod, uid)},
            volume_id=f"csi-{uid}",
        )
    return publish_request(target, spc=case, pod=pod, uid=uid, volume_id=f"csi-{uid}")


# ---- floors ----

MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)


class TmpfsFloor:
    """Python writing the case's files into a fresh tmpfs: mount(2), then open/write/close
    per file; the unmount afterwards is not timed. Without root, a plain directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.serial = 0
        self.mount = os.geteuid() == 0

    def write(self, count: int, size: int) -> float:
        self.serial += 1
        target = self.directory / f"t{self.serial}"
        target.mkdir(parents=True)
        payload = [bytes([65 + i % 26]) * size for i in range(count)]
        started = time.perf_counter()
        if self.mount:
            rc = _libc.mount(b"tmpfs", str(target).encode(), b"tmpfs", 6, b"mode=0755")
            if rc != 0:
                raise OSError(ctypes.get_errno(), "mount")
        for index, data in enumerate(payload):
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
            fd = os.open(target / f"secret-{index:03d}", flags, 0o640)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        elapsed = (time.perf_counter() - started) * 1000
        if self.mount:
            _libc.umount2(str(target).encode(), MNT_DETACH)
        else:
            for index in range(count):
                os.unlink(target / f"secret-{index:03d}")
        target.rmdir()
        return elapsed


class PluginFloor:
    """The Mount request the agent would send, straight to the plugin over its socket."""

    def __init__(self, socket_path: str) -> None:
        self.channel = grpc.aio.insecure_channel(f"unix://{socket_path}")
        self._mount = self.channel.unary_unary(
            "/v1alpha1.CSIDriverProvider/Mount",
            request_serializer=bytes,
            response_deserializer=pb.MountResponse.parse,
        )
        self.request = pb.MountRequest(
            attributes=json.dumps(plugin_parameters()),
            secrets="null",
            target_path="/unused",
            permission="420",
        )

    async def call(self) -> float:
        started = time.perf_counter()
        reply = await self._mount(self.request, timeout=30)
        elapsed = (time.perf_counter() - started) * 1000
        assert len(reply.files) == len(PLUGIN_OBJECTS), reply
        return elapsed

    async def close(self) -> None:
        await self.channel.close()


class VaultFloor:
    """The JWT login and the KV v2 read of one publish, from one kept-alive aiohttp session."""

    def __init__(self, vault: VaultCase) -> None:
        self.vault = vault
        self.session = aiohttp.ClientSession()

    async def call(self) -> float:
        uid = str(uuid.uuid4())
        jwt = self.vault.jwt(f"pod-{uid[-8:]}", uid)  # signed before the clock starts
        address = self.vault.server.address
        started = time.perf_counter()
        login: dict[str, Any] = await self._json(
            "POST",
            f"{address}/v1/auth/{self.vault.jwt_mount}/login",
            json={"role": self.vault.role, "jwt": jwt},
        )
        token = login["auth"]["client_token"]
        secret = await self._json(
            "GET", f"{address}/v1/{self.vault.secret_path}", headers={"X-Vault-Token": token}
        )
        elapsed = (time.perf_counter() - started) * 1000
        assert set(secret["data"]["data"]) >= set(VAULT_KEYS)
        return elapsed

    async def _json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        async with self.session.request(method, url, **kwargs) as response:
            response.raise_for_status()
            body: dict[str, Any] = await response.json()
            return body

    async def close(self) -> None:
        await self.session.close()
