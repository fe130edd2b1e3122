"""Credentials from a kubeconfig against the fake API over HTTPS: an exec plugin's token and a
``tokenFile`` are refreshed when the server starts wanting another one (as client-go does), a
client certificate authenticates, and no credential reaches a log line, even at -v=5."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.errors import ApiForbidden, ApiUnavailable
from agent.k8s import connection
from agent.k8s.api import ApiSettings, KubeApi, Lane
from agent.k8s.connection import load_configuration
from agent.k8s.resources import PODS
from tests.fakes.kube_api import FakeKubeApi
from tests.support.kube_credentials import (
    FIRST,
    JWT_SHAPED,
    SECOND,
    hanging_plugin,
    in_cluster,
    killed_leftovers,
    kubeconfig_with_user,
    token_file_plugin,
)


@pytest.fixture
def kube_api_options() -> dict[str, Any]:
    return {"tls": True, "token": FIRST}


async def rotate_and_list(kube: FakeKubeApi, kubeconfig: Path, token_file: Path) -> None:
    client = KubeApi()
    client.connect(await load_configuration(str(kubeconfig)))
    try:
        await client.list(PODS, Lane.PUBLISH)
        kube.token = SECOND  # the server now wants the new credential
        token_file.write_text(SECOND + "\n")
        await client.list(PODS, Lane.PUBLISH)
    finally:
        await client.close()


async def test_an_exec_plugin_token_is_refreshed_when_it_expires(
    kube_api: FakeKubeApi, tmp_path: Path, log_lines: io.StringIO
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(FIRST)
    kubeconfig = kubeconfig_with_user(kube_api, tmp_path, token_file_plugin(tmp_path, token_file))
    await rotate_and_list(kube_api, kubeconfig, token_file)
    assert (tmp_path / "runs").read_text().count("run") >= 2
    assert FIRST not in log_lines.getvalue() and SECOND not in log_lines.getvalue()


async def test_a_token_file_is_read_again_as_client_go_does(
    kube_api: FakeKubeApi, tmp_path: Path, log_lines: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connection, "TOKEN_FILE_REREAD_S", 0.0)  # no minute-long wait
    token_file = tmp_path / "token"
    token_file.write_text(FIRST)
    kubeconfig = kubeconfig_with_user(kube_api, tmp_path, {"tokenFile": "token"})  # relative
    await rotate_and_list(kube_api, kubeconfig, token_file)
    assert FIRST not in log_lines.getvalue() and SECOND not in log_lines.getvalue()


async def test_an_unreadable_token_file_keeps_the_last_token_and_names_the_file(
    kube_api: FakeKubeApi, tmp_path: Path, log_lines: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connection, "TOKEN_FILE_REREAD_S", 0.0)
    token_file = tmp_path / "token"
    token_file.write_text(FIRST)
    kubeconfig = kubeconfig_with_user(kube_api, tmp_path, {"tokenFile": str(token_file)})
    client = KubeApi()
    client.connect(await load_configuration(str(kubeconfig)))
    try:
        token_file.unlink()
        await client.list(PODS, Lane.PUBLISH)  # still the first token
        kube_api.token = SECOND
        with pytest.raises(ApiForbidden, match="HTTP 401 Unauthorized"):
            await client.list(PODS, Lane.PUBLISH)
    finally:
        await client.close()
    warnings = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    unreadable = [w for w in warnings if w["event"] == "k8s.token_file_unreadable"]
    assert unreadable and unreadable[0]["path"] == str(token_file)
    assert FIRST not in log_lines.getvalue()


async def test_a_client_certificate_kubeconfig_works_and_its_key_is_never_logged(
    tmp_path: Path, log_lines: io.StringIO
) -> None:
    async with FakeKubeApi.running(tmp_path / "api", tls=True, client_certs=True) as kube:
        assert kube.tls is not None
        key = kube.tls.client_key_path.read_text()
        client = KubeApi()
        client.connect(await load_configuration(str(kube.kubeconfig_path)))
        without = tmp_path / "no-cert"
        kube.write_kubeconfig(without)
        config = yaml.safe_load(without.read_text())
        config["users"][0]["user"] = {}
        without.write_text(yaml.safe_dump(config))
        anonymous = KubeApi()
        anonymous.connect(await load_configuration(str(without)))
        try:
            await client.list(PODS, Lane.PUBLISH)
            with pytest.raises(ApiUnavailable, match="list pods"):
                await anonymous.list(PODS, Lane.PUBLISH)  # the handshake refuses it
        finally:
            await client.close()
            await anonymous.close()
    body = "".join(key.splitlines()[1:-1])  # the base64 between the PEM armour
    assert body[:40] not in log_lines.getvalue()


async def test_the_in_cluster_token_is_trimmed_and_read_again_after_rotation(
    kube_api: FakeKubeApi, tmp_path: Path, log_lines: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token file ending in a newline (a hand-made Secret) works, as with client-go; a new
    token is picked up, and a file missing for a moment keeps the last one."""
    monkeypatch.setattr(connection, "SERVICE_ACCOUNT_DIR", tmp_path / "sa")
    monkeypatch.setattr(connection, "TOKEN_FILE_REREAD_S", 0.0)
    environ = in_cluster(kube_api, tmp_path / "sa", FIRST + "\n")
    client = KubeApi()
    client.connect(await load_configuration("", environ))
    token_file = tmp_path / "sa" / "token"
    try:
        await client.list(PODS, Lane.PUBLISH)
        token_file.unlink()  # kubelet's swap, seen half-way
        await client.list(PODS, Lane.PUBLISH)
        kube_api.token = SECOND
        token_file.write_text(SECOND + "\n")
        await client.list(PODS, Lane.PUBLISH)
    finally:
        await client.close()
    assert FIRST not in log_lines.getvalue() and SECOND not in log_lines.getvalue()


async def test_an_exec_plugin_that_hangs_is_run_once_at_a_time_and_never_left_behind(
    kube_api: FakeKubeApi, tmp_path: Path, log_lines: io.StringIO
) -> None:
    kubeconfig = kubeconfig_with_user(kube_api, tmp_path, hanging_plugin(tmp_path))
    client = KubeApi(ApiSettings(request_timeout=0.5))
    client.connect(await load_configuration(str(kubeconfig)))
    try:
        await client.list(PODS, Lane.PUBLISH)
        (tmp_path / "hang").touch()
        calls = [client.list(PODS, lane) for lane in (Lane.PUBLISH, Lane.BACKGROUND) * 3]
        results = await asyncio.gather(*calls, return_exceptions=True)
    finally:
        await client.close()
    assert all(isinstance(r, ApiUnavailable) and "timed out" in r.message for r in results)
    assert killed_leftovers(tmp_path) == 0  # each was killed when its request gave up
    # Runs: at start, for the first request, and one for all six requests (not six).
    assert (tmp_path / "runs").read_text().count("run") == 3
    assert "k8s.exec_plugin_killed" in log_lines.getvalue()


async def test_an_exec_plugin_that_fails_is_named_and_its_stderr_scrubbed(
    kube_api: FakeKubeApi, tmp_path: Path, log_lines: io.StringIO
) -> None:
    kubeconfig = kubeconfig_with_user(kube_api, tmp_path, hanging_plugin(tmp_path))
    client = KubeApi()
    client.connect(await load_configuration(str(kubeconfig)))
    try:
        (tmp_path / "fail").touch()
        with pytest.raises(ApiForbidden) as caught:
            await client.list(PODS, Lane.PUBLISH)
    finally:
        await client.close()
    assert caught.value.message == (
        f"list pods (all): cannot obtain credentials: exec plugin {tmp_path}/plugin.sh exited "
        "with 3: denied: [REDACTED]"
    )
    assert JWT_SHAPED not in log_lines.getvalue()
