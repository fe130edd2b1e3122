"""A kubeconfig exec plugin's first run, at start, against the fake API over HTTPS: it goes
through the agent's own runner (as the refreshes do), so a plugin that hangs is killed and
reaped when the start gives up, with an error that names the user and the command but none of
the plugin's arguments or environment; a slow plugin, a client certificate from the plugin,
and client-go's order (a static token wins: the plugin never runs) all work."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from agent.errors import ConfigError
from agent.k8s import connection, exec_plugin
from agent.k8s.api import KubeApi, Lane
from agent.k8s.connection import load_configuration
from agent.k8s.resources import PODS
from tests.fakes.kube_api import FakeKubeApi
from tests.support.kube_credentials import (
    EXEC_API,
    FIRST,
    exec_credential,
    hanging_plugin,
    kill_and_reap,
    kubeconfig_with_user,
    plugin_processes,
    script_plugin,
)

SECRET_ARG = "arg-secret-5f0c1e2d3b4a"
SECRET_ENV = "env-secret-9a8b7c6d5e4f"


@pytest.fixture
def kube_api_options() -> dict[str, Any]:
    return {"tls": True, "token": FIRST}


def with_secrets(user: dict[str, Any]) -> dict[str, Any]:
    """The plugin given an argument and an environment variable that hold secrets."""
    user["exec"]["args"] = [SECRET_ARG]
    user["exec"]["env"] = [{"name": "PLUGIN_KEY", "value": SECRET_ENV}]
    return user


async def list_pods(kubeconfig: Path) -> None:
    client = KubeApi()
    client.connect(await load_configuration(str(kubeconfig)))
    try:
        await client.list(PODS, Lane.PUBLISH)
    finally:
        await client.close()


async def test_a_plugin_that_hangs_at_start_is_killed_reaped_and_named(
    kube_api: FakeKubeApi, tmp_path: Path, log_lines: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connection, "FIRST_CREDENTIALS_S", 0.5)
    (tmp_path / "hang").touch()
    kubeconfig = kubeconfig_with_user(kube_api, tmp_path, with_secrets(hanging_plugin(tmp_path)))
    try:
        with pytest.raises(ConfigError) as caught:
            await load_configuration(str(kubeconfig))
        left_running = plugin_processes(tmp_path)  # gone once the start has given up
    finally:
        await kill_and_reap(tmp_path)  # a failing run leaves none either
    assert left_running == []
    assert str(caught.value) == (
        f"cannot load Kubernetes API configuration from {kubeconfig}: kubeconfig user "
        f'"fake": exec plugin {tmp_path}/plugin.sh gave no credentials within 0.5 s (killed)'
    )
    assert (tmp_path / "runs").read_text().count("run") == 1
    logged = log_lines.getvalue()
    assert "k8s.exec_plugin_killed" in logged
    assert SECRET_ARG not in logged + str(caught.value)
    assert SECRET_ENV not in logged + str(caught.value)


async def test_a_plugin_that_answers_after_a_moment_gets_its_args_and_env(
    kube_api: FakeKubeApi, tmp_path: Path, log_lines: io.StringIO
) -> None:
    seen = tmp_path / "seen"
    user = script_plugin(
        tmp_path,
        "sleep 0.3\n"
        f'printf \'%s\\n\' "$1" "$PLUGIN_KEY" "$KUBERNETES_EXEC_INFO" > {seen}\n'
        f"printf '%s' '{exec_credential(FIRST)}'\n",
    )
    await list_pods(kubeconfig_with_user(kube_api, tmp_path, with_secrets(user)))
    argument, variable, exec_info = seen.read_text().splitlines()
    assert (argument, variable) == (SECRET_ARG, SECRET_ENV)
    assert json.loads(exec_info) == {
        "apiVersion": EXEC_API,
        "kind": "ExecCredential",
        "spec": {"interactive": False},
    }
    assert FIRST not in log_lines.getvalue() and SECRET_ENV not in log_lines.getvalue()


async def test_a_static_token_wins_over_the_plugin_as_in_client_go(
    kube_api: FakeKubeApi, tmp_path: Path
) -> None:
    user = script_plugin(
        tmp_path, f"echo run >> {tmp_path}/runs\nprintf '%s' '{exec_credential('other')}'\n"
    )
    await list_pods(kubeconfig_with_user(kube_api, tmp_path, {**user, "token": FIRST}))
    assert not (tmp_path / "runs").exists()


def certificate_plugin(kube: FakeKubeApi, directory: Path, *, key: bool = True) -> Path:
    """A kubeconfig whose plugin prints the fake's client certificate (and its key)."""
    assert kube.tls is not None
    status = {"clientCertificateData": kube.tls.client_cert_path.read_text()}
    if key:
        status["clientKeyData"] = kube.tls.client_key_path.read_text()
    answer = directory / "answer.json"
    answer.write_text(
        json.dumps({"apiVersion": EXEC_API, "kind": "ExecCredential", "status": status})
    )
    return kubeconfig_with_user(kube, directory, script_plugin(directory, f"cat {answer}\n"))


async def test_a_client_certificate_from_the_plugin_authenticates(tmp_path: Path) -> None:
    async with FakeKubeApi.running(tmp_path / "api", tls=True, client_certs=True) as kube:
        await list_pods(certificate_plugin(kube, tmp_path))


async def test_a_certificate_without_its_key_is_named(tmp_path: Path) -> None:
    async with FakeKubeApi.running(tmp_path / "api", tls=True, client_certs=True) as kube:
        kubeconfig = certificate_plugin(kube, tmp_path, key=False)
        with pytest.raises(ConfigError) as caught:
            await load_configuration(str(kubeconfig))
    assert str(caught.value) == (
        f"cannot load Kubernetes API configuration from {kubeconfig}: kubeconfig user "
        f'"fake": exec plugin {tmp_path}/plugin.sh printed status.clientCertificateData '
        "without status.clientKeyData"
    )


async def test_a_malformed_stanza_is_named_without_its_values(
    kube_api: FakeKubeApi, tmp_path: Path, log_lines: io.StringIO
) -> None:
    user = script_plugin(tmp_path, f"echo run >> {tmp_path}/runs\n")
    user["exec"]["args"] = SECRET_ARG  # one string, not a list
    kubeconfig = kubeconfig_with_user(kube_api, tmp_path, user)
    with pytest.raises(ConfigError) as caught:
        await load_configuration(str(kubeconfig))
    assert str(caught.value) == (
        f"cannot load Kubernetes API configuration from {kubeconfig}: kubeconfig user "
        '"fake": exec.args must be a list of strings'
    )
    assert SECRET_ARG not in log_lines.getvalue() and not (tmp_path / "runs").exists()


async def test_a_wrapper_whose_child_hangs_is_killed_with_its_child(
    kube_api: FakeKubeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plugin that is a script running its helper as a child (no ``exec``): killing the
    script alone left the helper holding the plugin's stdout, and the start waited for it
    (600 s here) instead of failing when its time ran out."""
    monkeypatch.setattr(connection, "FIRST_CREDENTIALS_S", 0.5)
    shutil.copy(shutil.which("sleep") or "/bin/sleep", tmp_path / "helper")  # names its dir
    user = script_plugin(tmp_path, f"{tmp_path}/helper 600\necho done\n")
    kubeconfig = kubeconfig_with_user(kube_api, tmp_path, user)
    try:
        async with asyncio.timeout(10):  # a bound for the failure, not a wait
            with pytest.raises(ConfigError, match=r"gave no credentials within 0\.5 s"):
                await load_configuration(str(kubeconfig))
        left_running = plugin_processes(tmp_path)
    finally:
        await kill_and_reap(tmp_path)
    assert left_running == []


async def test_a_plugin_that_prints_without_end_is_stopped_at_the_output_limit(
    kube_api: FakeKubeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its output was all kept in memory (gigabytes within the 60 s), and once its time ran
    out the agent waited for a pipe it no longer read: the start never ended."""
    monkeypatch.setattr(connection, "FIRST_CREDENTIALS_S", 0.5)
    shutil.copy(shutil.which("yes") or "/usr/bin/yes", tmp_path / "flood")
    user = script_plugin(tmp_path, f"exec {tmp_path}/flood\n")
    kubeconfig = kubeconfig_with_user(kube_api, tmp_path, user)
    try:
        async with asyncio.timeout(10):
            with pytest.raises(ConfigError) as caught:
                await load_configuration(str(kubeconfig))
        left_running = plugin_processes(tmp_path)
    finally:
        await kill_and_reap(tmp_path)
    assert left_running == []
    assert str(caught.value).endswith(
        f'kubeconfig user "fake": exec plugin {tmp_path}/plugin.sh printed more than '
        f"{exec_plugin.MAX_OUTPUT_BYTES} bytes (killed)"
    )
