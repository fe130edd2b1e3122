"""The ``exec`` stanza of a kubeconfig user: what to run, with which arguments and environment.

Its fields are those of client-go's ``ExecConfig`` (kubeconfig reference, "client-go credential
plugins"): ``command`` and ``apiVersion`` required, ``args`` a list of strings, ``env`` a list of
``{name, value}``. ``interactiveMode`` is not read: the agent never gives a plugin a terminal
(``spec.interactive`` is false, as for ``Never``). An error names the user and the field, never
an argument or a value: both often hold secrets (a key, a client secret).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.k8s.lean_import import ConfigException


@dataclass(frozen=True, slots=True)
class PluginCommand:
    """One user's plugin. ``env``: the kubeconfig's variables only (the agent's own
    environment is added when it runs, under them, as client-go does)."""

    user: str
    command: str
    args: tuple[str, ...] = field(repr=False)  # may hold secrets: never in a repr or a log
    env: Mapping[str, str] = field(repr=False)
    api_version: str

    def __str__(self) -> str:
        return f"exec plugin {self.command}"  # never the args nor env: they may hold secrets


def plugin_command(user: str, stanza: object) -> PluginCommand:
    """The plugin of kubeconfig user ``user`` from its ``exec`` stanza (a mapping, or
    kubernetes_asyncio's ConfigNode around one); ConfigException naming a bad field."""
    fields = getattr(stanza, "value", stanza)  # ConfigNode wraps the loaded YAML
    if not isinstance(fields, Mapping):
        raise _invalid(user, "exec", "must be a mapping")
    command, api_version = fields.get("command"), fields.get("apiVersion")
    if not isinstance(command, str) or not command:
        raise _invalid(user, "exec.command", "is required")
    if not isinstance(api_version, str) or not api_version:
        raise _invalid(user, "exec.apiVersion", "is required")
    return PluginCommand(user, command, _args(user, fields), _env(user, fields), api_version)


def _args(user: str, fields: Mapping[str, Any]) -> tuple[str, ...]:
    args = fields.get("args") or []
    if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
        raise _invalid(user, "exec.args", "must be a list of strings")
    return tuple(args)


def _env(user: str, fields: Mapping[str, Any]) -> dict[str, str]:
    entries = fields.get("env") or []
    if not isinstance(entries, list):
        raise _invalid(user, "exec.env", "must be a list of {name, value}")
    env = {}
    for index, entry in enumerate(entries):
        name = entry.get("name") if isinstance(entry, Mapping) else None
        value = entry.get("value") if isinstance(entry, Mapping) else None
        if not isinstance(name, str) or not name or not isinstance(value, str):
            raise _invalid(user, f"exec.env[{index}]", "must have a name and a string value")
        env[name] = value
    return env


def _invalid(user: str, field: str, problem: str) -> ConfigException:
    return ConfigException(f'kubeconfig user "{user}": {field} {problem}')
