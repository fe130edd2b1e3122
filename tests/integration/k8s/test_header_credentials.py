"""Credentials an HTTP header cannot carry (a control character such as a final line break, an
unpaired surrogate), against the fake API over HTTPS: refused where they are loaded (a
kubeconfig ``token``, ``tokenFile``, an auth-provider's token, an exec plugin's
``status.token``, the in-cluster token file), at start or at a refresh, by an error that names
where the credential came from and quotes none of it; a token file is trimmed as client-go's
file token source trims it. Whatever slips through still fails as an API error, never as
aiohttp's raw ValueError, and without the header's value."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import aiohttp.http_writer
import pytest

from agent.errors import ApiForbidden, ConfigError
from agent.k8s import connection
from agent.k8s.api import KubeApi, Lane
from agent.k8s.connection import load_configuration
from agent.k8s.lean_import import Configuration
from agent.k8s.resources import PODS
from tests.fakes.kube_api import FakeKubeApi
from tests.support.kube_credentials import (
    FIRST,
    JWT_SHAPED,
    SECOND,
    exec_credential,
    in_cluster,
    kubeconfig_with_user,
    script_plugin,
    token_file_plugin,
)

LINE_BREAK = "ends with a line break, which an HTTP header cannot carry"
CONTROL = "holds a control character, which an HTTP header cannot carry"
SURROGATE = "holds an unpaired surrogate (not Unicode text), which an HTTP header cannot carry"
BAD_TOKENS = {
    "final-newline": (FIRST + "\n", LINE_BREAK),
    "final-crlf": (FIRST + "\r\n", LINE_BREAK),
    "nul": (FIRST[:10] + "\0" + FIRST[10:], CONTROL),
    "inner-newline": (FIRST[:10] + "\n" + FIRST[10:], CONTROL),
    "del": (FIRST + "\x7f", CONTROL),
    "surrogate": (FIRST + "\ud800", SURROGATE),
}


@pytest.fixture
def kube_api_options() -> dict[str, Any]:
    return {"tls": True, "token": FIRST}


async def list_pods(configuration: Configuration) -> None:
    client = KubeApi()
    client.connect(configuration)
    try:
        await client.list(PODS, Lane.PUBLISH)
    finally:
        await client.close()


def refused_at_start(kubeconfig: Path, detail: str) -> str:
    return f"cannot load Kubernetes API configuration from {kubeconfig}: {detail}"


@pytest.mark.parametrize(("token", "problem"), BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
async def test_a_kubeconfig_token_a_header_cannot_carry_is_refused_at_start(
    kube_api: FakeKubeApi, tmp_path: Path, log_lines: io.StringIO, token: str, problem: str
) -> None:
    """Not trimmed (client-go sends it as it is, and fails): refused, naming the field."""
    kubeconfig = kubeconfig_with_user(kube_api, tmp_path, {"token": token})
    with pytest.raises(ConfigError) as caught:
        await load_configuration(str(kubeconfig))
    assert str(caught.value) == refused_at_start(
        kubeconfig, f'kubeconfig user "fake": token {problem}'
    )
    assert FIRST[:10] not in str(caught.value) + log_lines.getvalue()


async def test_a_token_file_is_trimmed_as_client_go_s_file_source_trims_it(
    kube_api: FakeKubeApi, tmp_path: Path
) -> None:
    (tmp_path / "token").write_text(f"  {FIRST}\n")
    kubeconfig = kubeconfig_with_user(kube_api, tmp_path, {"tokenFile": "token"})
    await list_pods(await load_configuration(str(kubeconfig)))


@pytest.mark.parametrize(
    ("content", "problem"),
    [(BAD_TOKENS["nul"][0] + "\n", CONTROL), (" \n", "holds only spaces")],
    ids=["nul", "only-spaces"],
)
async def test_a_token_file_a_header_cannot_carry_is_refused_at_start(
    kube_api: FakeKubeApi, tmp_path: Path, log_lines: io.StringIO, content: str, problem: str
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(content)
    kubeconfig = kubeconfig_with_user(kube_api, tmp_path, {"tokenFile": "token"})
    with pytest.raises(ConfigError) as caught:
        await load_configuration(str(kubeconfig))
    detail = f'kubeconfig user "fake": tokenFile {token_file} {problem}'
    assert str(caught.value) == refused_at_start(kubeconfig, detail)
    assert FIRST[:10] not in str(caught.value) + log_lines.getvalue()


async def test_a_token_file_turned_bad_keeps_the_last_token_and_says_why(
    kube_api: FakeKubeApi, tmp_path: Path, log_lines: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connection, "TOKEN_FILE_REREAD_S", 0.0)
    token_file = tmp_path / "token"
    token_file.write_text(FIRST)
    kubeconfig = kubeconfig_with_user(kube_api, tmp_path, {"tokenFile": "token"})
    configuration = await load_configuration(str(kubeconfig))
    token_file.write_text(SECOND[:10] + "\0" + SECOND[10:])
    await list_pods(configuration)  # with the first token still
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    refused = [line for line in lines if line["event"] == "k8s.token_file_refused"]
    assert refused and refused[0]["path"] == str(token_file) and refused[0]["error"] == CONTROL
    assert FIRST not in log_lines.getvalue() and SECOND[:10] not in log_lines.getvalue()


async def test_an_exec_plugin_token_a_header_cannot_carry_is_refused_at_start(
    kube_api: FakeKubeApi, tmp_path: Path, log_lines: io.StringIO
) -> None:
    """Spaces and line breaks around it are trimmed (as before); a NUL inside is refused."""
    credential = exec_credential(FIRST[:10] + "\\u0000" + FIRST[10:])
    user = script_plugin(tmp_path, f"printf '%s' '{credential}'\n")
    kubeconfig = kubeconfig_with_user(kube_api, tmp_path, user)
    with pytest.raises(ConfigError) as caught:
        await load_configuration(str(kubeconfig))
    detail = (
        f'kubeconfig user "fake": exec plugin {tmp_path}/plugin.sh printed a status.token '
        f"that {CONTROL}"
    )
    assert str(caught.value) == refused_at_start(kubeconfig, detail)
    assert FIRST[:10] not in str(caught.value) + log_lines.getvalue()


async def test_an_exec_plugin_token_a_header_cannot_carry_is_refused_at_refresh(
    kube_api: FakeKubeApi, tmp_path: Path, log_lines: io.StringIO
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(FIRST)
    kubeconfig = kubeconfig_with_user(kube_api, tmp_path, token_file_plugin(tmp_path, token_file))
    client = KubeApi()
    client.connect(await load_configuration(str(kubeconfig)))
    try:
        await client.list(PODS, Lane.PUBLISH)
        token_file.write_text(SECOND[:10] + "\\u0007" + SECOND[10:])  # a BEL, as JSON text
        with pytest.raises(ApiForbidden) as caught:
            await client.list(PODS, Lane.PUBLISH)
    finally:
        await client.close()
    assert caught.value.message == (
        f"list pods (all): cannot obtain credentials: exec plugin {tmp_path}/plugin.sh printed "
        f"a status.token that {CONTROL}"
    )
    assert SECOND[:10] not in log_lines.getvalue() and FIRST not in log_lines.getvalue()


async def test_an_auth_provider_token_a_header_cannot_carry_is_refused_at_start(
    kube_api: FakeKubeApi, tmp_path: Path, log_lines: io.StringIO
) -> None:
    provider = {"name": "oidc", "config": {"id-token": JWT_SHAPED + "\n", "client-id": "agent"}}
    kubeconfig = kubeconfig_with_user(kube_api, tmp_path, {"auth-provider": provider})
    with pytest.raises(ConfigError) as caught:
        await load_configuration(str(kubeconfig))
    detail = f'kubeconfig user "fake": the token of auth-provider oidc {LINE_BREAK}'
    assert str(caught.value) == refused_at_start(kubeconfig, detail)
    assert JWT_SHAPED not in log_lines.getvalue()


async def test_an_in_cluster_token_a_header_cannot_carry_is_refused_at_start(
    kube_api: FakeKubeApi, tmp_path: Path, log_lines: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trimmed (test_credentials), but a control character inside is refused."""
    monkeypatch.setattr(connection, "SERVICE_ACCOUNT_DIR", tmp_path / "sa")
    environ = in_cluster(kube_api, tmp_path / "sa", BAD_TOKENS["nul"][0] + "\n")
    with pytest.raises(ConfigError) as caught:
        await load_configuration("", environ)
    detail = f"the service account token file {tmp_path}/sa/token {CONTROL}"
    assert str(caught.value) == (
        f"cannot load Kubernetes API configuration from in-cluster service account: {detail}"
    )
    assert FIRST[:10] not in str(caught.value) + log_lines.getvalue()


@pytest.mark.parametrize("python_writer", [False, True], ids=["c-writer", "python-writer"])
async def test_a_header_aiohttp_refuses_is_an_api_error_that_quotes_none_of_it(
    kube_api: FakeKubeApi, monkeypatch: pytest.MonkeyPatch, python_writer: bool
) -> None:
    """A credential set after start by a hook the agent does not check (kubernetes_asyncio's
    auth-provider refresh, say). aiohttp's C header writer refuses a control character with
    a ValueError; its Python writer (aiohttp without its C extensions) raises a
    UnicodeEncodeError for a surrogate whose text quotes it. Either is an ApiForbidden that
    names the header and quotes no part of its value."""
    token, problem = BAD_TOKENS["surrogate" if python_writer else "nul"]
    if python_writer:
        monkeypatch.setattr(
            aiohttp.http_writer, "_serialize_headers", aiohttp.http_writer._py_serialize_headers
        )
    configuration = await load_configuration(str(kube_api.kubeconfig_path))
    configuration.refresh_api_key_hook = lambda conf: conf.api_key.update(
        BearerToken=f"Bearer {token}"
    )
    with pytest.raises(ApiForbidden) as caught:
        await list_pods(configuration)
    assert caught.value.message == (
        f"list pods (all): cannot send the credentials: the Authorization header {problem}"
    )
    assert "ud800" not in caught.value.message and FIRST[:10] not in caught.value.message
