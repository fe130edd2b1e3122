"""OpenShift: the privileged DaemonSet admitted through a SecurityContextConstraints granted in
the release's namespace only, the cluster's trusted CAs injected, the operator's knobs.

kubernetes-validate has no schema for SecurityContextConstraints (an OpenShift API), so the SCC is
checked here against the fields of openshift/api's security/v1 type and for what admission
would check: does it allow every volume type and privilege the agent's pod uses?"""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.conftest import OPENSHIFT, Helm, container, one

# security.openshift.io/v1 SecurityContextConstraints fields (openshift/api security/v1/types.go).
SCC_FIELDS = {
    "apiVersion", "kind", "metadata", "priority", "allowPrivilegedContainer",
    "defaultAddCapabilities", "requiredDropCapabilities", "allowedCapabilities",
    "allowHostDirVolumePlugin", "volumes", "allowedFlexVolumes", "allowHostNetwork",
    "allowHostPorts", "allowHostPID", "allowHostIPC", "userNamespaceLevel",
    "defaultAllowPrivilegeEscalation", "allowPrivilegeEscalation", "seLinuxContext", "runAsUser",
    "supplementalGroups", "fsGroup", "readOnlyRootFilesystem", "users", "groups",
    "seccompProfiles", "allowedUnsafeSysctls", "forbiddenSysctls",
}  # fmt: skip
SCC_REQUIRED = {
    "allowHostDirVolumePlugin", "allowHostIPC", "allowHostNetwork", "allowHostPID",
    "allowHostPorts", "allowPrivilegedContainer", "allowedCapabilities", "defaultAddCapabilities",
    "priority", "readOnlyRootFilesystem", "requiredDropCapabilities", "volumes",
}  # fmt: skip
SCC_VOLUME_TYPES = {
    "awsElasticBlockStore", "azureDisk", "azureFile", "cephFS", "cinder", "configMap", "csi",
    "downwardAPI", "emptyDir", "ephemeral", "fc", "flexVolume", "flocker", "gcePersistentDisk",
    "gitRepo", "glusterfs", "hostPath", "image", "iscsi", "nfs", "persistentVolumeClaim",
    "photonPersistentDisk", "portworxVolume", "projected", "quobyte", "rbd", "scaleIO", "secret",
    "storageOS", "vsphere", "none", "*",
}  # fmt: skip
RANGE_STRATEGIES = {"RunAsAny", "MustRunAs", "MustRunAsRange", "MustRunAsNonRoot"}
SCC_ROLE = "rel-secrets-store-agent-scc"  # the chart's other Role is the version key's


def pod_volume_types(pod: dict[str, Any]) -> set[str]:
    types = {next(k for k in volume if k != "name") for volume in pod["volumes"]}
    if pod.get("automountServiceAccountToken", True):
        types.add("projected")  # the service-account token volume admission adds
    return types


@pytest.mark.parametrize("namespace", ["openshift-cluster-csi-drivers", "secrets-store"])
def test_scc_admits_the_daemonset_and_is_granted_in_the_namespace_only(
    helm: Helm, namespace: str
) -> None:
    objects = helm.template(OPENSHIFT, namespace=namespace)
    scc = one(objects, "SecurityContextConstraints")
    pod = one(objects, "DaemonSet")["spec"]["template"]["spec"]

    assert set(scc) <= SCC_FIELDS
    assert set(scc) >= SCC_REQUIRED
    assert set(scc["volumes"]) <= SCC_VOLUME_TYPES
    for strategy in ("runAsUser", "seLinuxContext", "fsGroup", "supplementalGroups"):
        assert scc[strategy]["type"] in RANGE_STRATEGIES | {"RunAsAny"}
    # What the pod uses is allowed; what it does not use is not.
    assert pod_volume_types(pod) <= set(scc["volumes"])
    assert scc["allowPrivilegedContainer"] is True
    assert scc["allowHostDirVolumePlugin"] is True
    assert not any(scc[f] for f in ("allowHostNetwork", "allowHostPID", "allowHostIPC"))
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
    assert scc["users"] == [] and scc["groups"] == []

    role, binding = one(objects, "Role", SCC_ROLE), one(objects, "RoleBinding", SCC_ROLE)
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == namespace
    assert role["rules"] == [
        {
            "apiGroups": ["security.openshift.io"],
            "resources": ["securitycontextconstraints"],
            "resourceNames": [scc["metadata"]["name"]],
            "verbs": ["use"],
        }
    ]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": pod["serviceAccountName"], "namespace": namespace}
    ]
    for cluster_role in (o for o in objects if o["kind"] == "ClusterRole"):
        resources = {r for rule in cluster_role["rules"] for r in rule["resources"]}
        assert "securitycontextconstraints" not in resources


def test_existing_scc_instead_of_a_new_one(helm: Helm) -> None:
    objects = helm.template(OPENSHIFT, sets=["openshift.securityContextConstraints.create=false"])

    assert not [o for o in objects if o["kind"] == "SecurityContextConstraints"]
    assert one(objects, "Role", SCC_ROLE)["rules"][0]["resourceNames"] == ["privileged"]


def test_trusted_ca_bundle_is_injected_and_used(helm: Helm) -> None:
    objects = helm.template(OPENSHIFT)
    bundle = one(objects, "ConfigMap")
    agent = container(objects, "secrets-store")
    pod = one(objects, "DaemonSet")["spec"]["template"]["spec"]

    assert bundle["metadata"]["labels"]["config.openshift.io/inject-trusted-cabundle"] == "true"
    (volume,) = [v for v in pod["volumes"] if v.get("configMap", {}).get("name")]
    assert volume["configMap"]["name"] == bundle["metadata"]["name"]
    (mount,) = [m for m in agent["volumeMounts"] if m["name"] == volume["name"]]
    env = {e["name"]: e.get("value") for e in agent["env"]}
    (item,) = volume["configMap"]["items"]
    assert env["SSL_CERT_FILE"] == f"{mount['mountPath']}/{item['path']}"


def test_operator_knobs_and_csidriver_labels(helm: Helm) -> None:
    objects = helm.template(OPENSHIFT)
    driver = one(objects, "CSIDriver")
    args = container(objects, "secrets-store")["args"]

    assert driver["metadata"]["labels"]["security.openshift.io/csi-ephemeral-volume-profile"] == (
        "restricted"
    )
    assert driver["spec"]["fsGroupPolicy"] == "File"
    assert driver["spec"]["requiresRepublish"] is True
    assert driver["spec"]["tokenRequests"] == [{"audience": "vault", "expirationSeconds": 3600}]
    assert "--enable-secret-rotation=true" in args
    assert "--rotation-poll-interval=2m" in args


def test_operator_knobs_as_values(helm: Helm) -> None:
    """The operator's ClusterCSIDriver knobs (rotation interval, managed token audiences) are
    plain values over the OpenShift file."""
    objects = helm.template(
        OPENSHIFT,
        sets=[
            "rotationPollInterval=10m",
            "tokenRequests[0].audience=vault",
            "tokenRequests[1].audience=api://AzureADTokenExchange",
            "tokenRequests[1].expirationSeconds=3600",
        ],
    )
    spec = one(objects, "CSIDriver")["spec"]

    assert "--rotation-poll-interval=10m" in container(objects, "secrets-store")["args"]
    assert [r["audience"] for r in spec["tokenRequests"]] == ["vault", "api://AzureADTokenExchange"]
    no_rotation = helm.template(OPENSHIFT, sets=["enableSecretRotation=false"])
    assert one(no_rotation, "CSIDriver")["spec"]["requiresRepublish"] is False


def test_nothing_openshift_without_openshift(helm: Helm) -> None:
    objects = helm.template()
    assert not [o for o in objects if o["kind"] == "SecurityContextConstraints"]
    assert not [o for o in objects if o["metadata"]["name"] == SCC_ROLE]
    assert "labels" not in one(objects, "CSIDriver")["metadata"] or (
        "security.openshift.io/csi-ephemeral-volume-profile"
        not in one(objects, "CSIDriver")["metadata"]["labels"]
    )
