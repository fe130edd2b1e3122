"""Standalone manifests whose ``kind`` or ``apiVersion`` is a slip from one the agent reads are
reported (file, document, field, what was expected) and named by "not found"; other kinds that
share the directory stay quiet."""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog

from agent.errors import SecretProviderClassNotFound, ServiceAccountNotFound
from agent.standalone.spc_source import DirectorySecretProviderClassSource

GROUP = "secrets-store.csi.x-k8s.io"
EXPECTED_VERSIONS = f"{GROUP}/v1 or {GROUP}/v1alpha1"
CONFIG_MAP = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: b}\n"


def manifest(kind: str, api_version: str | None, name: str = "db") -> str:
    version = "" if api_version is None else f"apiVersion: {api_version}\n"
    return f"{version}kind: {kind}\nmetadata: {{name: {name}}}\nspec: {{provider: fake}}\n"


@pytest.mark.parametrize(
    ("kind", "api_version", "field", "value"),
    [
        ("SecretProviderClas", f"{GROUP}/v1", "kind", '"SecretProviderClas"'),
        ("secretproviderclass", f"{GROUP}/v1", "kind", '"secretproviderclass"'),
        ("SecretProviderClass", f"{GROUP}/v2", "apiVersion", f'"{GROUP}/v2"'),
        ("SecretProviderClass", "secrets-store.csi.k8s.io/v1", "apiVersion", None),
        ("SecretProviderClass", "secret-store.csi.x-k8s.io/v1alpha1", "apiVersion", None),
        ("SecretProviderClass", GROUP, "apiVersion", f'"{GROUP}"'),
        ("SecretProviderClass", None, "apiVersion", "Required value"),
    ],
)
async def test_a_slip_in_kind_or_api_version_is_reported_and_named_by_not_found(
    tmp_path: Path, kind: str, api_version: str | None, field: str, value: str | None
) -> None:
    (tmp_path / "spcs.yaml").write_text(CONFIG_MAP + "---\n" + manifest(kind, api_version))
    source = DirectorySecretProviderClassSource(tmp_path)

    with structlog.testing.capture_logs() as logs:
        for _ in range(2):
            with pytest.raises(SecretProviderClassNotFound) as info:
                await source.get("default", "db")

    warnings = [e for e in logs if e["event"] == "standalone.spc_invalid"]
    assert len(warnings) == 1  # once per change of the directory, not per lookup
    assert warnings[0]["log_level"] == "warning"
    assert warnings[0]["file"] == "spcs.yaml (document 2)"
    reason = warnings[0]["reason"]
    assert reason.startswith(f"{field}: ")
    assert value is None or value in reason
    assert EXPECTED_VERSIONS in reason
    if field == "kind":
        assert "the agent reads SecretProviderClass" in reason
    assert f"(see spcs.yaml (document 2): {reason})" in info.value.message


@pytest.mark.parametrize(
    "document",
    [
        CONFIG_MAP,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: db}\n",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\n",
        "apiVersion: v1\nkind: Service\nmetadata: {name: db}\n",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: db}\n",
        manifest("SecretProviderClassPodStatus", f"{GROUP}/v1"),
        # Another group's kinds of the names the agent reads are not slips.
        manifest("ServiceAccount", "iam.gcp.upbound.io/v1beta1"),
        manifest("Node", "example.com/v1"),
        manifest("SecretProviderClass", "example.com/v1"),
        # ... nor are another group's kinds of names near them (GCP Config Connector,
        # Crossplane's GCP provider).
        manifest("IAMServiceAccount", "iam.cnrm.cloud.google.com/v1beta1"),
        manifest("ServiceAccountKey", "cloudplatform.gcp.upbound.io/v1beta1"),
        manifest("SecretProviderClassX", "example.com/v1"),
        "[]\n",
        "kind: 3\n",
    ],
)
async def test_kinds_the_agent_does_not_read_stay_quiet(tmp_path: Path, document: str) -> None:
    (tmp_path / "other.yaml").write_text(document)
    source = DirectorySecretProviderClassSource(tmp_path)
    with (
        structlog.testing.capture_logs() as logs,
        pytest.raises(SecretProviderClassNotFound) as info,
    ):
        await source.get("default", "db")
    assert logs == []
    assert "(see " not in info.value.message


@pytest.mark.parametrize(
    ("kind", "api_version", "field"),
    [("Serviceaccount", "v1", "kind"), ("ServiceAccount", "v2", "apiVersion")],
)
async def test_a_service_account_slip_is_named_by_service_account_not_found(
    tmp_path: Path, kind: str, api_version: str, field: str
) -> None:
    (tmp_path / "sa.yaml").write_text(manifest(kind, api_version, "app"))
    source = DirectorySecretProviderClassSource(tmp_path)
    with structlog.testing.capture_logs() as logs, pytest.raises(ServiceAccountNotFound) as info:
        await source.annotations("default", "app")
    assert [(e["file"], e["reason"].split(":")[0]) for e in logs] == [("sa.yaml", field)]
    assert "the agent reads" in logs[0]["reason"] and "v1" in logs[0]["reason"]
    assert f"(see sa.yaml: {logs[0]['reason']})" in info.value.message


async def test_a_slip_in_a_node_kind_is_reported(tmp_path: Path) -> None:
    (tmp_path / "node.yaml").write_text("apiVersion: v1\nkind: node\nmetadata: {name: n}\n")
    with structlog.testing.capture_logs() as logs:
        assert await DirectorySecretProviderClassSource(tmp_path).node_labels("n") is None
    assert [e["reason"] for e in logs] == [
        'kind: Unsupported value: "node": the agent reads Node (apiVersion v1); document skipped'
    ]


async def test_a_long_wrong_value_is_cut_in_the_warning(tmp_path: Path) -> None:
    (tmp_path / "spc.yaml").write_text(manifest("ServiceAccount", "v" * 10_000))
    with structlog.testing.capture_logs() as logs:
        await DirectorySecretProviderClassSource(tmp_path).rescan()
    assert len(logs) == 1 and len(logs[0]["reason"]) < 300
