"""A kubeconfig file pointing at the fake, for a client in this process
(``kubernetes_asyncio.config.load_kube_config(config_file=...)``) or an agent subprocess
(``--kubeconfig``)."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml


def write_kubeconfig(
    path: Path,
    server: str,
    *,
    token: str | None = None,
    ca_path: Path | None = None,
    client_cert: tuple[Path, Path] | None = None,
    namespace: str = "default",
    name: str = "fake",
) -> Path:
    cluster: dict[str, object] = {"server": server}
    if ca_path is not None:
        cluster["certificate-authority"] = str(ca_path)
    user: dict[str, object] = {"token": token} if token else {}
    if client_cert is not None:  # inline, as kubeadm writes admin.conf
        user["client-certificate-data"] = base64.b64encode(client_cert[0].read_bytes()).decode()
        user["client-key-data"] = base64.b64encode(client_cert[1].read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": user}],
        "contexts": [
            {"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}}
        ],
        "current-context": name,
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
