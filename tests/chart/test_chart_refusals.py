"""Values a node could not run with: `helm template` refuses them naming the value and what to
change (never echoing a value that may hold a secret), or renders manifests that work. Each
case here rendered a DaemonSet the API server or the agent would have refused at install."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from agent.flags import build_parser
from tests.chart.conftest import CHART, Helm, container, one
from tests.chart.test_chart_daemonset import agent_settings
from tests.chart.test_chart_manifests import NEWEST_KUBERNETES, validation_errors

REFUSED = {
    "zero-rotation-interval": (
        ["rotationPollInterval=0s"],
        'rotationPollInterval "0s" must be above zero',
    ),
    "duration-past-gos-longest": (
        ["rotationPollInterval=99999999999h"],
        '"99999999999h" is longer than a Go duration can be',
    ),
    "provider-timeout-past-kubelets": (
        ["providerTimeout=2m"],
        'providerTimeout "2m" must be above 0 and below 2m',
    ),
    "zero-health-check-interval": (
        ["providerHealthCheck=true", "providerHealthCheckInterval=0s"],
        'providerHealthCheckInterval "0s" must be above zero',
    ),
    "metrics-without-port": (
        ["linux.metricsAddr=localhost"],
        'linux.metricsAddr "localhost" is not a listen address kubelet can probe: use :PORT',
    ),
    "metrics-port-out-of-range": (["linux.metricsAddr=:99999"], 'linux.metricsAddr ":99999"'),
    "metrics-and-health-on-two-addresses": (
        ["linux.metricsAddr=127.0.0.1:9808"],
        "are the same port on different addresses",
    ),
    "registrar-on-the-agents-port": (
        ["linux.registrar.healthPort=9808"],
        "linux.registrar.healthPort 9808 is also the agent's port",
    ),
    "comma-in-provider-dir": (
        ["linux.additionalProvidersDirs[0]=/a\\,b"],
        'provider dir "/a,b" contains a comma',
    ),
    "relative-provider-dir": (
        ["linux.additionalProvidersDirs[0]=providers"],
        "at '/linux/additionalProvidersDirs/0'",
    ),
    "unknown-extra-arg": (
        ["linux.extraArgs[0]=--no-such-flag"],
        "linux.extraArgs[0] (--no-such-flag) is not a flag of the agent",
    ),
    "extra-arg-the-chart-fixes": (
        ["linux.extraArgs[0]=--standalone-dir=/etc/spc"],
        "linux.extraArgs[0] (--standalone-dir): the chart sets this flag itself",
    ),
    "extra-arg-tied-to-hostpaths": (
        ["windows.enabled=true", "windows.extraArgs[0]=-kubelet-root-dir=D:\\kubelet"],
        "windows.extraArgs[0] (--kubelet-root-dir): the chart renders this flag from the value "
        "windows.kubeletRootDir",
    ),
    "extra-arg-tied-to-rbac": (
        ["linux.extraArgs[0]=--token-request-fallback"],
        "from the value tokenRequestFallback",
    ),
    "aws-only-values-without-vaults-audience": (
        ["tokenRequests[0].audience=sts.amazonaws.com"],
        "or set providers.vault.enabled=false if no SecretProviderClass uses Vault",
    ),
    "repeated-audience": (
        ["tokenRequests[0].audience=vault", "tokenRequests[1].audience=vault"],
        'tokenRequests[1].audience "vault" is listed twice',
    ),
    "namespace-not-a-name": ([], 'namespace "Secrets_Store" is not a Kubernetes namespace name'),
    "update-strategy-type": (
        ["linux.updateStrategy.type=Rolling"],
        "at '/linux/updateStrategy/type': value must be one of 'RollingUpdate', 'OnDelete'",
    ),
    "priority-class-not-a-name": (
        ["linux.priorityClassName=Node_Critical"],
        "at '/linux/priorityClassName'",
    ),
    "hmac-secret-not-a-name": (
        ["providers.vault.hmacSecretName=Vault_Key"],
        "at '/providers/vault/hmacSecretName'",
    ),
    "vault-address-without-scheme": (
        ["providers.vault.address=vault:8200"],
        "at '/providers/vault/address'",
    ),
    "azure-cloud-unknown": (["providers.azure.cloudName=Mars"], "at '/providers/azure/cloudName'"),
    "tmpfs-size-unparsable": (["linux.tmpfsSize=lots"], "at '/linux/tmpfsSize'"),
    "tmp-size-limit-not-a-quantity": (["linux.tmpSizeLimit=lots"], "at '/linux/tmpSizeLimit'"),
    "image-pull-secret-as-string": (
        ["imagePullSecrets[0]=regcred"],
        "at '/imagePullSecrets/0'",
    ),
    "empty-image": (["linux.image.repository="], "at '/linux/image/repository'"),
    # An unquoted `true` or number in a values file: the API refuses a non-string annotation or
    # label value (kubernetes-validate finds it in the DaemonSet, the CSIDriver, every object).
    "annotation-not-a-string": (
        ["linux.podAnnotations.prometheus\\.io/scrape=true"],
        "at '/linux/podAnnotations/prometheus.io~1scrape': got boolean, want string",
    ),
    "daemonset-annotation-not-a-string": (
        ["windows.daemonsetAnnotations.revision=3"],
        "at '/windows/daemonsetAnnotations/revision': got number, want string",
    ),
    "pod-label-not-a-string": (["linux.podLabels.tier=1"], "at '/linux/podLabels/tier'"),
    "common-label-not-a-string": (["commonLabels.managed=true"], "at '/commonLabels/managed'"),
    "csidriver-label-not-a-string": (["csiDriver.labels.v=2"], "at '/csiDriver/labels/v'"),
    # Every namespaced object and ClusterRole is named from these: the API refuses such names.
    "fullname-not-a-name": (["fullnameOverride=Secrets_Store"], "at '/fullnameOverride'"),
    "name-override-not-a-name": (["nameOverride=Agent"], "at '/nameOverride'"),
}


@pytest.mark.parametrize(("sets", "expected"), REFUSED.values(), ids=REFUSED.keys())
def test_values_no_node_could_run_are_refused(helm: Helm, sets: list[str], expected: str) -> None:
    namespace = "Secrets_Store" if "namespace" in expected else "kube-system"
    assert expected in helm.template_error(sets=sets, namespace=namespace)


SECRET = "s3cr3t-Pa55"


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        (
            [f"providers.vault.address=https://admin:{SECRET}@vault:8200"],
            "providers.vault.address carries credentials in a URL",
        ),
        (
            [f"providers.aws.podIdentityEndpoint=http://u:{SECRET}@169.254.170.23"],
            "providers.aws.podIdentityEndpoint carries credentials in a URL",
        ),
        (
            [f"linux.extraArgs[0]=--vault-address=https://admin:{SECRET}@vault"],
            "linux.extraArgs[0] (--vault-address) carries credentials in a URL",
        ),
        ([f"linux.extraArgs[0]=--vault-token={SECRET}"], "(--vault-token) is not a flag"),
    ],
    ids=["vault-address", "pod-identity-endpoint", "extra-arg-url", "extra-arg-token"],
)
def test_credentials_are_refused_without_being_echoed(
    helm: Helm, sets: list[str], expected: str
) -> None:
    message = helm.template_error(sets=sets)
    assert expected in message
    assert SECRET not in message


RENDERED = {
    "providers-dir-repeated": [
        "linux.additionalProvidersDirs[0]=/var/run/secrets-store-csi-providers",
        "linux.additionalProvidersDirs[1]=/etc/kubernetes/secrets-store-csi-providers",
        "linux.additionalProvidersDirs[2]=/etc/kubernetes/secrets-store-csi-providers",
    ],
    "metrics-off": ["linux.metricsAddr="],
    "metrics-beside-health": ["linux.metricsAddr=:9808"],
    "on-delete-updates": ["linux.updateStrategy.type=OnDelete", "linux.updateStrategy=null"],
    "tuning-overridden-in-extra-args": ["linux.extraArgs[0]=-v=3", "providerTimeout=60s"],
}


def pod_problems(objects: list[dict[str, Any]]) -> list[str]:
    """What the API server refuses that kubernetes-validate's schemas do not check."""
    problems = []
    pod = one(objects, "DaemonSet")["spec"]["template"]["spec"]
    volumes = [v["name"] for v in pod["volumes"]]
    if len(volumes) != len(set(volumes)):
        problems.append(f"volume names repeat: {volumes}")
    for c in pod["containers"]:
        paths = [m["mountPath"] for m in c.get("volumeMounts", [])]
        if len(paths) != len(set(paths)):
            problems.append(f"{c['name']} mounts twice at one path: {paths}")
        ports = [p["containerPort"] for p in c.get("ports", [])]
        if len(ports) != len(set(ports)):
            problems.append(f"{c['name']} declares a port twice: {ports}")
    return problems


@pytest.mark.parametrize("sets", RENDERED.values(), ids=RENDERED.keys())
def test_odd_but_workable_values_render_manifests_that_work(helm: Helm, sets: list[str]) -> None:
    objects = helm.template(sets=sets)

    assert validation_errors(objects, NEWEST_KUBERNETES) == []
    assert pod_problems(objects) == []
    agent_settings(objects)  # the agent's own parser takes every rendered flag


def test_metrics_off_means_no_metrics_port(helm: Helm) -> None:
    agent = container(helm.template(sets=["linux.metricsAddr="]), "secrets-store")
    assert [p["name"] for p in agent["ports"]] == ["healthz"]


def chart_flag_table() -> dict[str, str]:
    text = (CHART / "templates" / "_flags.tpl").read_text()
    body = re.search(r'define "ssa.agentFlags" -}}\n(.*?)\n{{- end', text, re.S)
    assert body is not None
    return dict(yaml.safe_load(body[1]))


def test_the_charts_flag_table_is_the_agents_parser() -> None:
    parser_flags = {
        next((s for s in a.option_strings if s.startswith("--")), a.option_strings[0])[2:]
        for a in build_parser()._actions
        if a.option_strings and a.dest != "help"
    }
    table = chart_flag_table()
    assert set(table) == parser_flags
    kinds = {entry.split(" ", 1)[0] for entry in table.values()}
    assert kinds == {"fixed", "value", "tunable", "extraArgs"}
