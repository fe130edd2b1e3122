"""The chart's CRDs: valid CustomResourceDefinitions (kubernetes-validate, strict), and the
same group, names, versions and schema fields as upstream's (reference upstream-driver §10),
so a cluster can switch between the upstream driver and this agent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.fakes.kube.crds import CHART_CRDS, load_crds

GROUP = "secrets-store.csi.x-k8s.io"
SPC_FIELDS = {
    "apiVersion",
    "kind",
    "metadata",
    "spec",
    "spec.provider",
    "spec.parameters",
    "spec.secretObjects",
    "spec.secretObjects[].secretName",
    "spec.secretObjects[].type",
    "spec.secretObjects[].labels",
    "spec.secretObjects[].annotations",
    "spec.secretObjects[].data",
    "spec.secretObjects[].data[].objectName",
    "spec.secretObjects[].data[].key",
    "status",
}
SPCPS_FIELDS = {
    "apiVersion",
    "kind",
    "metadata",
    "status",
    "status.podName",
    "status.secretProviderClassName",
    "status.mounted",
    "status.targetPath",
    "status.objects",
    "status.objects[].id",
    "status.objects[].version",
}


def crd(plural: str) -> dict[str, Any]:
    path = CHART_CRDS / f"{GROUP}_{plural}.yaml"
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert len(documents) == 1
    return documents[0]  # type: ignore[no-any-return]


def fields(schema: dict[str, Any], prefix: str = "") -> set[str]:
    found = set()
    for name, child in (schema.get("properties") or {}).items():
        path = f"{prefix}{name}"
        found.add(path)
        found |= fields(child, path + ".")
        if "items" in child:
            found |= fields(child["items"], path + "[].")
    return found


@pytest.mark.parametrize("path", sorted(Path(CHART_CRDS).glob("*.yaml")), ids=lambda p: p.name)
def test_manifests_are_valid_custom_resource_definitions(path: Path) -> None:
    for document in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(document, "1.30.0", strict=True)


@pytest.mark.parametrize(
    ("plural", "kind", "expected"),
    [
        ("secretproviderclasses", "SecretProviderClass", SPC_FIELDS),
        ("secretproviderclasspodstatuses", "SecretProviderClassPodStatus", SPCPS_FIELDS),
    ],
)
def test_names_versions_and_fields_match_upstream(
    plural: str, kind: str, expected: set[str]
) -> None:
    spec = crd(plural)["spec"]
    assert crd(plural)["metadata"]["name"] == f"{plural}.{GROUP}"
    assert spec["group"] == GROUP and spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": kind,
        "listKind": f"{kind}List",
        "plural": plural,
        "singular": kind.lower(),
    }
    versions = {v["name"]: v for v in spec["versions"]}
    assert [v for v in versions if versions[v]["storage"]] == ["v1"]
    assert versions["v1alpha1"]["served"] and versions["v1alpha1"]["deprecated"]
    assert "subresources" not in versions["v1"]  # upstream: no status subresource
    assert fields(versions["v1"]["schema"]["openAPIV3Schema"]) == expected
    alpha = fields(versions["v1alpha1"]["schema"]["openAPIV3Schema"])
    extra = {"status.byPod", "status.byPod[].id", "status.byPod[].namespace"}
    assert alpha == (expected | extra if plural == "secretproviderclasses" else expected)


def test_spc_v1alpha1_carries_upstreams_deprecation_warning() -> None:
    alpha = next(
        v for v in crd("secretproviderclasses")["spec"]["versions"] if v["name"] == "v1alpha1"
    )
    assert alpha["deprecationWarning"] == (
        f"{GROUP}/v1alpha1 is deprecated. Use {GROUP}/v1 instead."
    )


def test_pod_status_printer_columns() -> None:
    for version in crd("secretproviderclasspodstatuses")["spec"]["versions"]:
        columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
        assert columns["Pod"] == ".status.podName"
        assert columns["SecretProviderClass"] == ".status.secretProviderClassName"
        assert columns["Mounted"] == ".status.mounted"
        assert columns["Age"] == ".metadata.creationTimestamp"


def test_the_fake_serves_what_the_chart_defines() -> None:
    served = {t.plural: t for t in load_crds()}
    assert set(served) == {"secretproviderclasses", "secretproviderclasspodstatuses"}
    for rtype in served.values():
        assert [v.name for v in rtype.versions] == ["v1", "v1alpha1"]
        assert rtype.storage_version == "v1"
