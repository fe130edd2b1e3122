"""Node files and sockets named by a SecretProviderClass, against real OpenBao servers.

The agent runs as root on the node: a CA path, client key path or ``unix://`` address from a
SecretProviderClass is used only if it resolves inside a directory the operator trusts
(``trusted_dirs``, the agent flag ``--trusted-file-dirs``), and refused before anything is
opened or connected otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from agent.errors import InvalidSecretProviderClass
from agent.providers.vault import VaultClient, VaultProvider
from tests.support.jwt_signer import JwtSigner
from tests.support.openbao import OpenBaoServer, RequestCounter, VaultWorld, build_world


@pytest.fixture(scope="module")
def tls_world(openbao_tls: OpenBaoServer, jwt_signer: JwtSigner) -> VaultWorld:
    world = build_world(openbao_tls, jwt_signer)
    world.admin.kv_put(world.kv2, "team-a/app", {"password": "tls-secret"}, version=2)
    return world


@pytest.fixture(scope="module")
def plain_world(openbao: OpenBaoServer, jwt_signer: JwtSigner) -> VaultWorld:
    world = build_world(openbao, jwt_signer)
    world.admin.kv_put(world.kv2, "team-a/app", {"password": "socket-secret"}, version=2)
    return world


@pytest.fixture
def dirs(tmp_path: Path, openbao_tls: OpenBaoServer) -> dict[str, Path]:
    """``ca`` is trusted; ``ca-evil`` (a sibling sharing its prefix) and ``outside`` are not.
    Each holds a copy of the server's real CA, so only the trust check can refuse it."""
    found = {name: tmp_path / name for name in ("ca", "ca-evil", "outside")}
    for directory in found.values():
        directory.mkdir()
        shutil.copy(openbao_tls.ca_cert, directory / "ca.pem")
    return found


@pytest.fixture
async def counted(dirs: dict[str, Path]) -> AsyncIterator[tuple[VaultProvider, RequestCounter]]:
    counter = RequestCounter()
    provider = VaultProvider(
        version_key=b"k" * 32,
        timeout=5,
        client=VaultClient(timeout=5, on_request=counter),
        trusted_dirs=[str(dirs["ca"])],
        env={},
    )
    yield provider, counter
    await provider.close()


async def read(provider: VaultProvider, world: VaultWorld, **attributes: str) -> bytes:
    path = f"{world.kv2}/data/team-a/app"
    objects = [{"objectName": "p", "secretPath": path, "secretKey": "password"}]
    attributes.setdefault("vaultAddress", world.server.address)
    result = await provider.mount(world.request(objects, attributes=attributes))
    return result.files[0].contents


async def refusal(
    counted: tuple[VaultProvider, RequestCounter], world: VaultWorld, key: str, **attributes: str
) -> str:
    """The message of the refusal, after checking it names ``key`` and that nothing was sent."""
    provider, counter = counted
    with pytest.raises(InvalidSecretProviderClass) as info:
        await read(provider, world, **attributes)
    assert info.value.message.startswith(f"{key}: ")
    assert "--trusted-file-dirs" in info.value.message
    assert counter.calls == []
    return info.value.message


async def test_ca_file_in_a_trusted_dir_is_used(
    tls_world: VaultWorld, counted: tuple[VaultProvider, RequestCounter], dirs: dict[str, Path]
) -> None:
    provider, _ = counted
    ca = str(dirs["ca"] / "ca.pem")
    assert await read(provider, tls_world, vaultCACertPath=ca) == b"tls-secret"
    assert await read(provider, tls_world, vaultCADirectory=str(dirs["ca"])) == b"tls-secret"


async def test_symlinks_inside_a_trusted_dir_are_followed(
    tls_world: VaultWorld, counted: tuple[VaultProvider, RequestCounter], dirs: dict[str, Path]
) -> None:
    """A ConfigMap volume's layout: ca.crt -> ..data/ca.crt, ..data -> ..2024_01_01."""
    provider, _ = counted
    (dirs["ca"] / "..2024_01_01").mkdir()
    shutil.copy(dirs["ca"] / "ca.pem", dirs["ca"] / "..2024_01_01" / "ca.crt")
    (dirs["ca"] / "..data").symlink_to("..2024_01_01")
    (dirs["ca"] / "ca.crt").symlink_to("..data/ca.crt")
    ca = str(dirs["ca"] / "ca.crt")
    assert await read(provider, tls_world, vaultCACertPath=ca) == b"tls-secret"


@pytest.mark.parametrize("key", ["vaultCACertPath", "vaultCADirectory"])
async def test_ca_outside_the_trusted_dirs_is_refused(
    tls_world: VaultWorld,
    counted: tuple[VaultProvider, RequestCounter],
    dirs: dict[str, Path],
    key: str,
) -> None:
    outside = dirs["outside"] if key == "vaultCADirectory" else dirs["outside"] / "ca.pem"
    message = await refusal(counted, tls_world, key, **{key: str(outside)})
    assert f"'{outside}'" in message
    assert f"({dirs['ca']})" in message


async def test_client_key_outside_the_trusted_dirs_is_refused(
    tls_world: VaultWorld, counted: tuple[VaultProvider, RequestCounter], dirs: dict[str, Path]
) -> None:
    # Any readable file would do: the agent must not even try to load it.
    await refusal(
        counted,
        tls_world,
        "vaultTLSClientKeyPath",
        vaultCACertPath=str(dirs["ca"] / "ca.pem"),
        vaultTLSClientCertPath=str(dirs["ca"] / "ca.pem"),
        vaultTLSClientKeyPath=str(dirs["outside"] / "ca.pem"),
    )


async def test_sibling_dir_sharing_the_prefix_is_refused(
    tls_world: VaultWorld, counted: tuple[VaultProvider, RequestCounter], dirs: dict[str, Path]
) -> None:
    ca = str(dirs["ca-evil"] / "ca.pem")
    await refusal(counted, tls_world, "vaultCACertPath", vaultCACertPath=ca)


async def test_symlink_escaping_a_trusted_dir_is_refused(
    tls_world: VaultWorld, counted: tuple[VaultProvider, RequestCounter], dirs: dict[str, Path]
) -> None:
    (dirs["ca"] / "link.pem").symlink_to(dirs["outside"] / "ca.pem")
    (dirs["ca"] / "link-dir").symlink_to(dirs["outside"])
    key = "vaultCACertPath"
    for path in (dirs["ca"] / "link.pem", dirs["ca"] / "link-dir" / "ca.pem"):
        message = await refusal(counted, tls_world, key, vaultCACertPath=str(path))
        # The path as written is quoted; where the link leads is not disclosed.
        assert str(dirs["outside"]) not in message
    dotted = f"{dirs['ca']}/../outside/ca.pem"
    await refusal(counted, tls_world, key, vaultCACertPath=dotted)
    await refusal(counted, tls_world, "vaultCADirectory", vaultCADirectory=f"{dirs['ca']}/link-dir")


async def test_openbao_spellings_are_checked_too(
    tls_world: VaultWorld, dirs: dict[str, Path]
) -> None:
    provider = VaultProvider("openbao", version_key=b"k" * 32, trusted_dirs=[str(dirs["ca"])])
    try:
        with pytest.raises(InvalidSecretProviderClass, match=r"^baoCACertPath: "):
            await read(provider, tls_world, baoCACertPath=str(dirs["outside"] / "ca.pem"))
    finally:
        await provider.close()


@pytest.mark.parametrize(
    "key", ["vaultCACertPath", "vaultCADirectory", "vaultTLSClientCertPath", "vaultAddress"]
)
async def test_nothing_is_trusted_unless_configured(
    tls_world: VaultWorld, dirs: dict[str, Path], key: str
) -> None:
    provider = VaultProvider(version_key=b"k" * 32, env={})
    path = str(dirs["ca"] / "ca.pem")
    attributes = {key: f"unix://{path}" if key == "vaultAddress" else path}
    if key == "vaultTLSClientCertPath":
        attributes["vaultTLSClientKeyPath"] = path
    try:
        with pytest.raises(InvalidSecretProviderClass) as info:
            await read(provider, tls_world, **attributes)
    finally:
        await provider.close()
    assert info.value.message.startswith(f"{key}: ")
    assert "no directory is trusted" in info.value.message
    assert "--trusted-file-dirs" in info.value.message


@contextlib.contextmanager
def short_dir() -> Iterator[Path]:
    """A directory with a short path: a unix socket path must fit in 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="vt", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path)


@contextlib.asynccontextmanager
async def relay(socket_path: Path, address: str) -> AsyncIterator[list[int]]:
    """A unix socket that forwards to ``address`` (a Vault Agent stand-in); yields a list
    that gets one entry per accepted connection."""
    target = urlsplit(address)
    accepted: list[int] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        up_reader, up_writer = await asyncio.open_connection(target.hostname, target.port)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_unix_server(handle, path=str(socket_path))
    try:
        yield accepted
    finally:
        server.close()


# "#" and "?" are path characters after unix:// (as for Go's Vault client); parsing the path
# as a URL once more, after the trust check, cut it short and connected elsewhere.
@pytest.mark.parametrize("name", ["agent", "agent#1?x"])
async def test_unix_socket_in_a_trusted_dir_is_used(plain_world: VaultWorld, name: str) -> None:
    with short_dir() as root:
        (root / name).mkdir()
        socket = root / name / "vault.sock"
        provider = VaultProvider(version_key=b"k" * 32, trusted_dirs=[str(root / name)])
        try:
            async with relay(socket, plain_world.server.address) as accepted:
                address = f"unix://{socket}"
                assert await read(provider, plain_world, vaultAddress=address) == b"socket-secret"
                assert accepted
        finally:
            await provider.close()


async def test_unix_socket_outside_the_trusted_dirs_is_refused(plain_world: VaultWorld) -> None:
    with short_dir() as root:
        for name in ("agent", "agent-evil"):
            (root / name).mkdir()
        evil = root / "agent-evil" / "vault.sock"
        (root / "agent" / "link.sock").symlink_to(evil)
        provider = VaultProvider(version_key=b"k" * 32, trusted_dirs=[str(root / "agent")])
        try:
            async with relay(evil, plain_world.server.address) as accepted:
                for socket in (evil, root / "agent" / "link.sock"):
                    with pytest.raises(InvalidSecretProviderClass, match=r"^vaultAddress: "):
                        await read(provider, plain_world, vaultAddress=f"unix://{socket}")
                assert accepted == []
        finally:
            await provider.close()
