"""What a kubeconfig exec plugin prints: an ``ExecCredential`` of the configured apiVersion
(client authentication API, ``client.authentication.k8s.io``) whose ``status`` holds a
``token``, a ``clientCertificateData``/``clientKeyData`` pair (PEM), or both, and an optional
``expirationTimestamp`` (RFC 3339). The checks are client-go's: a credential of some kind, a
certificate only with its key, a timestamp that reads; and a token an HTTP header can carry
(``agent.k8s.header_credentials``). The errors name the field, never a value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from agent.k8s.exec_config import PluginCommand
from agent.k8s.header_credentials import header_problem
from agent.k8s.identity import token_expiry
from agent.k8s.lean_import import ConfigException


@dataclass(frozen=True, slots=True)
class ExecCredential:
    """``token``: stripped, None when the plugin gave a certificate only. ``expiry``: None when
    the plugin gave none (the credential is kept, as client-go keeps it until a 401)."""

    token: str | None = field(repr=False)
    expiry: datetime | None
    client_certificate: str | None = field(repr=False)
    client_key: str | None = field(repr=False)


def parse_credential(plugin: PluginCommand, stdout: bytes) -> ExecCredential:
    """The credential ``plugin`` printed; ConfigException naming what is wrong with it."""
    try:
        answer = json.loads(stdout)
    except (ValueError, RecursionError):  # RecursionError: nested too deep to parse
        raise ConfigException(f"{plugin} printed no JSON") from None
    if not isinstance(answer, dict) or answer.get("apiVersion") != plugin.api_version:
        raise ConfigException(f"{plugin} did not print an ExecCredential of {plugin.api_version}")
    status = answer.get("status")
    if not isinstance(status, dict):
        raise ConfigException(f"{plugin} printed no status")
    token = _text(status, "token").strip()  # a plugin's final newline (aiohttp refuses it)
    certificate, key = _text(status, "clientCertificateData"), _text(status, "clientKeyData")
    if certificate and not key:
        raise ConfigException(
            f"{plugin} printed status.clientCertificateData without status.clientKeyData"
        )
    if key and not certificate:
        raise ConfigException(
            f"{plugin} printed status.clientKeyData without status.clientCertificateData"
        )
    if not token and not certificate:
        raise ConfigException(f"{plugin} printed no status.token")
    if token and (problem := header_problem(token)):
        raise ConfigException(f"{plugin} printed a status.token that {problem}")
    expires = status.get("expirationTimestamp")
    expiry = token_expiry(expires)
    if expires is not None and expiry is None:
        raise ConfigException(f"{plugin} printed a status.expirationTimestamp that is not a time")
    return ExecCredential(token or None, expiry, certificate or None, key or None)


def _text(status: dict[str, object], key: str) -> str:
    """The field's text, or "" when it is absent, not a string or only spaces."""
    value = status.get(key)
    return value if isinstance(value, str) and value.strip() else ""
