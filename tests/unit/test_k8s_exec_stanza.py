"""A kubeconfig exec plugin's stanza and answer, read as client-go reads them: a bad field is
named with its user, never quoted (arguments and environment values often hold secrets)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from agent.k8s.exec_config import PluginCommand, plugin_command
from agent.k8s.exec_credential import parse_credential
from agent.k8s.exec_plugin import run_plugin
from agent.k8s.lean_import import ConfigException

API = "client.authentication.k8s.io/v1"
SECRET = "hunter2-not-for-logs"
PLUGIN = PluginCommand("ci", "/bin/login", (), {}, API)


def test_a_stanza_gives_command_args_env_and_version() -> None:
    stanza = {
        "apiVersion": API,
        "command": "aws",
        "args": ["eks", "get-token"],
        "env": [{"name": "AWS_PROFILE", "value": SECRET}],
        "interactiveMode": "Never",
    }
    plugin = plugin_command("ci", stanza)
    assert plugin == PluginCommand("ci", "aws", ("eks", "get-token"), {"AWS_PROFILE": SECRET}, API)
    assert str(plugin) == "exec plugin aws" and SECRET not in str(plugin)
    assert SECRET not in repr(plugin) and "get-token" not in repr(plugin)  # a future log line


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"command": None}, "exec.command is required"),
        ({"apiVersion": ""}, "exec.apiVersion is required"),
        ({"args": SECRET}, "exec.args must be a list of strings"),
        ({"args": [SECRET, 7]}, "exec.args must be a list of strings"),
        ({"env": {"KEY": SECRET}}, "exec.env must be a list of {name, value}"),
        ({"env": [{"value": SECRET}]}, "exec.env[0] must have a name and a string value"),
        ({"env": [{"name": "KEY", "value": 7}]}, "exec.env[0] must have a name and a string value"),
    ],
)
def test_a_bad_stanza_names_the_user_and_field_but_no_value(
    fields: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigException) as caught:
        plugin_command("ci", {"apiVersion": API, "command": "login", **fields})
    assert str(caught.value) == f'kubeconfig user "ci": {problem}'


def answer(**status: object) -> bytes:
    return json.dumps({"apiVersion": API, "kind": "ExecCredential", "status": status}).encode()


def test_a_token_is_stripped_and_its_expiry_read() -> None:
    credential = parse_credential(
        PLUGIN, answer(token=" t0k \n", expirationTimestamp="2030-01-02T03:04:05Z")
    )
    assert credential.token == "t0k"
    assert credential.expiry == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert "t0k" not in repr(credential)


@pytest.mark.parametrize(
    ("stdout", "problem"),
    [
        (b"Enter password:", "printed no JSON"),
        (b"[" * 100_000, "printed no JSON"),  # too deep for the parser: RecursionError
        (
            json.dumps({"apiVersion": "v0", "status": {"token": SECRET}}).encode(),
            f"did not print an ExecCredential of {API}",
        ),
        (answer(token=" "), "printed no status.token"),
        (
            answer(clientKeyData=SECRET),
            "printed status.clientKeyData without status.clientCertificateData",
        ),
        (
            answer(token=SECRET, expirationTimestamp="tomorrow"),
            "printed a status.expirationTimestamp that is not a time",
        ),
    ],
)
def test_a_bad_answer_is_named_without_its_values(stdout: bytes, problem: str) -> None:
    with pytest.raises(ConfigException) as caught:
        parse_credential(PLUGIN, stdout)
    assert str(caught.value) == f"exec plugin /bin/login {problem}"


class NoProgramsLoop(asyncio.SelectorEventLoop):
    """A loop without subprocesses, as Windows' selector loop."""

    async def subprocess_exec(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        ("/nonexistent/login", "cannot be started: No such file or directory"),
        ("/bin/sh", "cannot be started: this event loop runs no programs"),
    ],
)
def test_a_plugin_that_cannot_start_is_named(command: str, problem: str) -> None:
    plugin = PluginCommand("ci", command, (), {}, API)
    loop = NoProgramsLoop() if command == "/bin/sh" else asyncio.new_event_loop()
    try:
        with pytest.raises(ConfigException) as caught:
            loop.run_until_complete(run_plugin(plugin))
    finally:
        loop.close()
    assert str(caught.value) == f"exec plugin {command} {problem}"
