"""The SecretProviderClass examples in docs/examples stay valid: each one matches the CRD's
schema, decodes as the agent decodes a class, and its parameters pass the provider's own
parser (the check a mount makes before any store is called)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from agent.documents.spc import decode
from agent.providers.aws.config import parse_config as aws_config
from agent.providers.azure.config import parse_config as azure_config
from agent.providers.discovery import PLUGIN_NAME
from agent.providers.gcp.config import parse_config as gcp_config
from agent.providers.vault.config import Defaults
from agent.providers.vault.config import parse_config as vault_config

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "docs" / "examples"
CRD = REPO / "charts/secrets-store-agent/crds/secrets-store.csi.x-k8s.io_secretproviderclasses.yaml"


def load(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((EXAMPLES / name).read_text()))


def crd_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return dict(served["schema"]["openAPIV3Schema"])


def parse_vault(parameters: dict[str, str]) -> object:
    return vault_config(parameters, "vault", Defaults())


def parse_plugin(parameters: dict[str, str]) -> object:
    return parameters


# file -> (provider, parser of its parameters)
CHECKS = {
    "vault.yaml": ("vault", parse_vault),
    "aws-secretsmanager.yaml": ("aws", lambda p: aws_config(p, {})),
    "aws-ssm.yaml": ("aws", lambda p: aws_config(p, {})),
    "azure.yaml": ("azure", azure_config),
    "gcp.yaml": ("gcp", lambda p: gcp_config(p, {}, allow_node_publish_secret=False)),
    "plugin.yaml": ("akeyless", parse_plugin),
}


def test_every_example_is_checked() -> None:
    assert {p.name for p in EXAMPLES.glob("*.yaml")} == {*CHECKS, "pod.yaml"}


@pytest.mark.parametrize("name", CHECKS)
def test_example_class_is_valid(name: str) -> None:
    document = load(name)
    jsonschema.validate(document, crd_schema())
    spc = decode(document, "default", lambda _m, _k: "uid", lambda _m, _k: 1)
    provider, parse = CHECKS[name]

    assert spc.provider == provider
    assert PLUGIN_NAME.fullmatch(spc.provider)
    parse(dict(spc.parameters))


def test_example_pod_is_valid_kubernetes_and_names_an_example_class() -> None:
    pod = load("pod.yaml")
    kubernetes_validate.validate(pod, kubernetes_validate.latest_version(), strict=True)
    (volume,) = pod["spec"]["volumes"]
    assert volume["csi"]["driver"] == "secrets-store.csi.k8s.io"
    assert volume["csi"]["readOnly"] is True
    assert (
        load("vault.yaml")["metadata"]["name"]
        == volume["csi"]["volumeAttributes"]["secretProviderClass"]
    )
