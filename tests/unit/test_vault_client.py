"""VaultClient against a small in-process aiohttp fake: status mapping, re-login, coalescing.

The real OpenBao server covers the happy paths (tests/integration); this fake produces the
answers a dev server will not (503, 429, HTML, slow replies, errors echoing the JWT).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from agent.errors import ProviderError, ProviderUnavailable
from agent.providers.vault.client import Login, VaultClient
from agent.providers.vault.config import TLSConfig
from agent.providers.vault.nodefiles import NodeFiles, TLSMaterial
from agent.providers.vault.objects import ReadKey
from agent.providers.vault.tokens import TokenKey
from agent.providers.vault.transport import Target

JWT = "eyJhbGciOiJSUzI1NiJ9.payload-of-the-pod.signature"


@dataclass
class FakeVault:
    logins: int = 0
    valid: set[str] = field(default_factory=set)
    login_delay: float = 0.0
    reject_login_with: str = ""

    async def login(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.logins += 1
        await asyncio.sleep(self.login_delay)
        if self.reject_login_with:
            # Real Vault does not echo the JWT, but a proxy or plugin might: we must scrub it.
            return web.json_response(
                {"errors": [f"{self.reject_login_with}: {body['jwt']}"]}, status=400
            )
        token = f"s.token-{self.logins}"
        self.valid.add(token)
        return web.json_response({"auth": {"client_token": token, "lease_duration": 3600}})

    async def read(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        if request.headers.get("X-Vault-Token") not in self.valid:
            return web.json_response({"errors": ["permission denied"]}, status=403)
        if path == "secret/data/ok":
            data = {
                "data": {"k": "v"},
                "query": dict(request.query),
                "ns": request.headers.get("X-Vault-Namespace"),
            }
            return web.json_response({"data": data})
        if path == "slow":
            await asyncio.sleep(5)
        canned = {
            "sealed": lambda: web.json_response({"errors": ["Vault is sealed"]}, status=503),
            "throttled": lambda: web.json_response({"errors": ["rate limited"]}, status=429),
            "html": lambda: web.Response(
                text="<html>proxy says hi</html>", content_type="text/html"
            ),
            "empty": lambda: web.Response(status=204),
            "bad": lambda: web.json_response({"errors": ["unsupported operation"]}, status=405),
        }
        return canned.get(path, lambda: web.json_response({"errors": []}, status=404))()


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeVault, str]]:
    vault = FakeVault()
    app = web.Application()
    app.router.add_post("/v1/auth/{mount}/login", vault.login)
    app.router.add_route("*", "/v1/{path:.*}", vault.read)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield vault, str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture
async def client() -> AsyncIterator[VaultClient]:
    vault_client = VaultClient(timeout=0.5)
    yield vault_client
    await vault_client.close()


def login_for(address: str, namespace: str = "") -> Login:
    key = TokenKey(address, namespace, "kubernetes", "app", "ns", "sa", "vault", "uid", "jwt")
    return Login(Target(address, namespace, TLSConfig()), "kubernetes", "app", key, jwt=JWT)


def read(path: str, *query: tuple[str, str]) -> ReadKey:
    return ReadKey("GET", f"/v1/{path}", tuple(query), None)


async def test_read_sends_token_namespace_and_query(
    fake: tuple[FakeVault, str], client: VaultClient
) -> None:
    vault, address = fake
    login = login_for(address, namespace="team-a")
    token = await client.token(login)
    body = await client.read(login, token, read("secret/data/ok", ("version", "2")))
    assert body.data is not None
    assert body.data["query"] == {"version": "2"}
    assert body.data["ns"] == "team-a"
    assert vault.logins == 1


async def test_concurrent_callers_share_one_login(
    fake: tuple[FakeVault, str], client: VaultClient
) -> None:
    vault, address = fake
    vault.login_delay = 0.05
    tokens = await asyncio.gather(*(client.token(login_for(address)) for _ in range(5)))
    assert vault.logins == 1
    assert len({t.value for t in tokens}) == 1
    assert sum(t.fresh for t in tokens) == 1


async def test_revoked_cached_token_triggers_one_relogin(
    fake: tuple[FakeVault, str], client: VaultClient
) -> None:
    vault, address = fake
    login = login_for(address)
    await client.token(login)
    vault.valid.clear()  # e.g. revoked by an operator
    cached = await client.token(login)
    assert not cached.fresh
    body = await client.read(login, cached, read("secret/data/ok"))
    assert body.data is not None
    assert body.data["data"] == {"k": "v"}
    assert vault.logins == 2


async def test_fresh_token_denied_is_not_retried(
    fake: tuple[FakeVault, str], client: VaultClient
) -> None:
    vault, address = fake
    login = login_for(address)
    token = await client.token(login)
    vault.valid.clear()
    with pytest.raises(ProviderError) as info:
        await client.read(login, token, read("secret/data/ok"))
    assert info.value.message == "permission denied reading secret/data/ok with role 'app'"
    assert vault.logins == 1
    assert token.value not in info.value.message


async def test_login_error_is_scrubbed(fake: tuple[FakeVault, str], client: VaultClient) -> None:
    vault, address = fake
    vault.reject_login_with = "invalid jwt"
    with pytest.raises(ProviderError) as info:
        await client.token(login_for(address))
    assert not isinstance(info.value, ProviderUnavailable)
    assert JWT not in info.value.message
    assert "role 'app'" in info.value.message
    assert "invalid jwt: [redacted]" in info.value.message


@pytest.mark.parametrize(
    ("path", "error", "text"),
    [
        ("sealed", ProviderUnavailable, "HTTP 503 reading sealed: Vault is sealed"),
        ("throttled", ProviderUnavailable, "HTTP 429"),
        ("slow", ProviderUnavailable, "cannot reach Vault"),
        ("missing", ProviderError, "secret not found at missing with role 'app'"),
        ("html", ProviderError, "no data at html with role 'app'"),
        ("empty", ProviderError, "no data at empty with role 'app'"),
        ("bad", ProviderError, "HTTP 405: unsupported operation"),
    ],
)
async def test_status_mapping(
    fake: tuple[FakeVault, str],
    client: VaultClient,
    path: str,
    error: type[ProviderError],
    text: str,
) -> None:
    _, address = fake
    login = login_for(address)
    token = await client.token(login)
    with pytest.raises(error) as info:
        await client.read(login, token, read(path))
    assert text in info.value.message
    if error is ProviderError:
        assert not isinstance(info.value, ProviderUnavailable)
    assert "proxy says hi" not in info.value.message


async def test_unreachable_address_is_unavailable(client: VaultClient) -> None:
    with pytest.raises(ProviderUnavailable, match=r"cannot reach Vault at http://127\.0\.0\.1:9"):
        await client.token(login_for("http://127.0.0.1:9"))


async def test_unloadable_ca_is_a_provider_error(client: VaultClient) -> None:
    login = login_for("https://127.0.0.1:9")
    files = NodeFiles(tls=TLSMaterial(cadata="not a certificate"))
    login = replace(login, target=replace(login.target, files=files))
    with pytest.raises(ProviderError, match="cannot load the TLS files") as info:
        await client.token(login)
    assert not isinstance(info.value, ProviderUnavailable)


async def test_changed_files_replace_the_session_once_its_requests_end(
    fake: tuple[FakeVault, str], client: VaultClient
) -> None:
    """A ConfigMap update shows as new bytes behind the same parameters: the session built
    from the old ones is replaced, and closed once the requests already sent on it end."""
    vault, address = fake
    old = login_for(address)
    new_files = NodeFiles(tls=TLSMaterial(skip_verify=True))
    new = replace(
        old,
        target=replace(old.target, files=new_files),
        key=replace(old.key, pod_uid="another-pod"),  # so that it logs in, not reuses a token
    )
    vault.login_delay = 0.3
    in_flight = asyncio.create_task(client.token(old))
    while vault.logins < 1:
        await asyncio.sleep(0.01)
    vault.login_delay = 0
    assert (await client.token(new)).fresh
    assert client.open_sessions() == 2  # the old one still carries the first login
    assert (await in_flight).fresh
    assert client.open_sessions() == 1
    await client.token(replace(new, key=replace(new.key, pod_uid="a-third-pod")))
    assert client.open_sessions() == 1
