"""kubernetes_asyncio's kubeconfig loader, with the plugin's first run on the agent's runner.

The loader (``kube_config.KubeConfigLoader``) reads the file, the context, the cluster, a
token, basic auth, certificates and auth-providers as it always does; only its
``load_from_exec_plugin`` is the agent's own: the plugin runs through
``agent.k8s.exec_plugin.run_plugin``, so a plugin that hangs at start is killed and reaped when
the start gives up, like any later run. Which credential wins is client-go's rule (its exec
authenticator stands aside for a token, a token file, basic auth or a client certificate):
with one of those in the user the plugin never runs; kubernetes_asyncio's loader would run the
plugin first and use its token instead. A token, a token file's (trimmed, as client-go's file
token source trims it) and an auth-provider's are refused at load when an HTTP header cannot
carry them (``agent.k8s.header_credentials``), naming the user and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.k8s.exec_config import PluginCommand, plugin_command
from agent.k8s.exec_credential import ExecCredential
from agent.k8s.exec_plugin import run_plugin
from agent.k8s.header_credentials import read_token_file, require_header_safe
from agent.k8s.lean_import import ConfigException, kube_config

# The user's fields that make client-go leave the plugin alone.
STATIC_CREDENTIALS = (
    "token",
    "tokenFile",
    "username",
    "client-certificate",
    "client-certificate-data",
)


class KubeconfigLoader(kube_config.KubeConfigLoader):
    """``plugin``, ``credential``: the exec plugin and what its first run gave, once it ran."""

    plugin: PluginCommand | None = None
    credential: ExecCredential | None = None
    cert_file: str | None  # read by the loader's _load_cluster_info and _set_config
    key_file: str | None

    @classmethod
    def from_files(cls, paths: str) -> KubeconfigLoader:
        """``paths``: one kubeconfig, or several separated as in ``KUBECONFIG`` (merged)."""
        merged = kube_config.KubeConfigMerger(paths)
        return cls(config_dict=merged.config, config_base_path=None)

    @property
    def user_name(self) -> str:
        context: Any = self.current_context or {}
        return str(context.get("context", {}).get("user", ""))

    def token_file(self) -> Path | None:
        """The user's ``tokenFile``, relative to the kubeconfig file that defines the user."""
        user: Any = self._user
        if user is None or not user.safe_get("tokenFile"):
            return None
        return Path(self._get_base_path(getattr(user, "path", None))) / str(user["tokenFile"])

    async def _load_authentication(self) -> None:
        await super()._load_authentication()
        provider, header = getattr(self, "provider", None), getattr(self, "token", None)
        if provider and isinstance(header, str):  # the others are checked where they are read
            require_header_safe(header, self._field(f"the token of auth-provider {provider}"))

    def _load_user_token(self) -> bool:
        """client-go's order: ``token``, else ``tokenFile``; False when the user has neither."""
        token = self._user.safe_get("token") if self._user is not None else None
        if token:
            self.token = "Bearer " + require_header_safe(str(token), self._field("token"))
            return True
        path = self.token_file()
        if path is None:
            return False
        self.token = "Bearer " + read_token_file(path, self._field(f"tokenFile {path}"))
        return True

    def _field(self, name: str) -> str:
        return f'kubeconfig user "{self.user_name}": {name}'

    async def load_from_exec_plugin(self) -> bool:
        user = self._user
        if user is None or any(user.safe_get(key) for key in STATIC_CREDENTIALS):
            return False  # the loader goes on to the static credential
        self.plugin = plugin_command(self.user_name, user["exec"])
        try:
            self.credential = credential = await run_plugin(self.plugin)
        except ConfigException as err:
            raise ConfigException(f'kubeconfig user "{self.user_name}": {err}') from None
        if credential.token is not None:
            self.token = f"Bearer {credential.token}"
        if credential.client_certificate is not None:
            self.cert_file = self._as_file(credential.client_certificate)
            self.key_file = self._as_file(credential.client_key)
        return True

    def _as_file(self, pem: str | None) -> str:
        """A private temporary file holding ``pem`` (removed when the process exits), as the
        loader keeps a kubeconfig's inline certificate."""
        holder = kube_config.FileOrData(
            {"pem": pem},
            None,
            "pem",
            base64_file_content=False,
            temp_file_path=self._temp_file_path,
        )
        return str(holder.as_file())
