"""helm lint, and every manifest the chart renders (default, full and OpenShift values, oldest
supported and newest Kubernetes) validated with kubernetes-validate in strict mode, offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from tests.chart.conftest import CHART, OLDEST_KUBERNETES, VALUES_FILES, Helm, one

NEWEST_KUBERNETES = kubernetes_validate.latest_version()
# Kinds outside Kubernetes' own API, which kubernetes-validate has no schema for; each has its
# own check (OpenShift's SCC: test_chart_openshift.py).
NOT_KUBERNETES = {("security.openshift.io/v1", "SecurityContextConstraints")}


@pytest.mark.parametrize("values", VALUES_FILES.values(), ids=VALUES_FILES.keys())
def test_helm_lint_strict(helm: Helm, values: tuple[Path, ...]) -> None:
    args = ["lint", "--strict", str(CHART)]
    for path in values:
        args += ["-f", str(path)]
    done = helm.run(*args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout


def validation_errors(objects: list[dict[str, Any]], version: str) -> list[str]:
    errors = []
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) in NOT_KUBERNETES:
            continue
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            path = "/".join(str(p) for p in err.absolute_path)
            errors.append(f"{name} at {path or '(root)'}: {err.message}")
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{name}: {obj['apiVersion']} is not a Kubernetes {version} kind")
    return errors


@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, NEWEST_KUBERNETES])
@pytest.mark.parametrize("values", VALUES_FILES.values(), ids=VALUES_FILES.keys())
def test_every_manifest_is_valid_kubernetes(
    helm: Helm, values: tuple[Path, ...], version: str
) -> None:
    # tokenRequests set, so the CSIDriver's version-dependent field is rendered too.
    objects = helm.template(*values, sets=["tokenRequests[0].audience=vault"], kube_version=version)

    assert validation_errors(objects, version) == []
    kinds = {o["kind"] for o in objects}
    assert {"DaemonSet", "CSIDriver", "ServiceAccount", "ClusterRole"} <= kinds


def test_validation_catches_a_misspelt_field(helm: Helm) -> None:
    objects = helm.template()
    daemonset = one(objects, "DaemonSet")
    daemonset["spec"]["template"]["spec"]["tolerationz"] = []

    (error,) = validation_errors([daemonset], NEWEST_KUBERNETES)
    assert "tolerationz" in error


def test_every_object_in_the_release_namespace_or_cluster_scoped(helm: Helm) -> None:
    cluster_scoped = {
        "CSIDriver",
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "SecurityContextConstraints",
    }
    for values in VALUES_FILES.values():
        for obj in helm.template(*values, namespace="secrets-store"):
            if obj["kind"] in cluster_scoped:
                assert "namespace" not in obj["metadata"], obj["kind"]
            else:
                assert obj["metadata"]["namespace"] == "secrets-store", obj["kind"]


def test_crds_and_the_agents_rbac_name_the_same_resources(helm: Helm) -> None:
    objects = helm.template()
    crds = {
        o["spec"]["names"]["plural"]: o for o in objects if o["kind"] == "CustomResourceDefinition"
    }
    assert set(crds) == {"secretproviderclasses", "secretproviderclasspodstatuses"}
    assert {crd["spec"]["group"] for crd in crds.values()} == {"secrets-store.csi.x-k8s.io"}
    assert {crd["spec"]["scope"] for crd in crds.values()} == {"Namespaced"}

    role = one(objects, "ClusterRole", "rel-secrets-store-agent-secretproviderclasses")
    granted = {
        resource
        for rule in role["rules"]
        if "secrets-store.csi.x-k8s.io" in rule["apiGroups"]
        for resource in rule["resources"]
    }
    assert {name.split("/")[0] for name in granted} == set(crds)
