"""Values: upstream's keys accepted, typos and values that cannot work refused with what to
change, and the CSIDriver and RBAC following the values as upstream's chart does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.conftest import FULL, UPSTREAM_DEFAULTS, Helm, container, one


def without_images(tmp_path: Path, upstream: Path = UPSTREAM_DEFAULTS) -> Path:
    """Upstream's values minus its driver images (the one thing that cannot carry over: they
    would run the upstream binary with this chart's flags)."""
    values = yaml.safe_load(upstream.read_text())
    for tree in ("linux", "windows"):
        del values[tree]["image"]
    path = tmp_path / "upstream-values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def leaf_keys(tree: dict[str, Any], prefix: str = "") -> set[str]:
    keys = set()
    for key, value in tree.items():
        keys.add(prefix + key)
        if isinstance(value, dict) and value and key not in {"resources", "affinity"}:
            keys |= leaf_keys(value, f"{prefix}{key}.")
    return keys


def test_upstream_default_values_render_without_their_images(helm: Helm, tmp_path: Path) -> None:
    objects = helm.template(without_images(tmp_path))

    assert one(objects, "CSIDriver")["spec"]["requiresRepublish"] is False
    agent = container(objects, "secrets-store")
    assert agent["image"].startswith("secrets-store-agent:")
    registrar = container(objects, "node-driver-registrar")
    assert registrar["image"] == "registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.16.0"
    assert agent["resources"]["limits"] == {"cpu": "200m", "memory": "200Mi"}


def test_every_upstream_key_exists_in_the_charts_values(tmp_path: Path) -> None:
    ours = yaml.safe_load((FULL.parents[1] / "values.yaml").read_text())
    upstream = yaml.safe_load(UPSTREAM_DEFAULTS.read_text())

    assert leaf_keys(upstream) - leaf_keys(ours) == set()


def test_a_misspelt_key_is_refused(helm: Helm) -> None:
    message = helm.template_error(sets=["syncSecrets.enabled=true"])
    assert "syncSecrets" in message


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        (
            ["syncSecret.enabled=true", "rbac.install=false"],
            "syncSecret.enabled needs the agent to write Secrets, but rbac.install=false",
        ),
        (["linux.enabled=false"], "linux.enabled=false and windows.enabled=false leave no"),
        (["tokenRequests[0].expirationSeconds=3600"], "tokenRequests[0].audience is empty"),
        (["rotationPollInterval=2min"], '"2min" is not a duration: use Go\'s form, e.g. 90s, 2m'),
        (
            ["rotationPollInterval=120"],
            "at '/rotationPollInterval': got number, want null or string",
        ),
        (["providerHealthCheck=true", "providerHealthCheckInterval=soon"], '"soon" is not a'),
        (
            ["enableSecretRotation=true"],
            "enableSecretRotation=true, but tokenRequests is empty: Vault logs in with the pod's "
            'service-account token for audience "vault"',
        ),
        (
            ["tokenRequests[0].audience=sts.amazonaws.com"],
            'providers.vault.audience "vault" is not in tokenRequests (sts.amazonaws.com): '
            "Vault would get no token for it. Add {audience: vault} to tokenRequests",
        ),
        (
            ["tokenRequestFallback=true", "rbac.install=false"],
            "tokenRequestFallback needs the agent to create service-account tokens, but "
            "rbac.install=false",
        ),
        (["syncSecret.resyncInterval=5"], "at '/syncSecret/resyncInterval': got number"),
        (["kubernetes.podCleanupGracePeriod=later"], '"later" is not a duration'),
        (["providers.vault.hmacSecretName="], "at '/providers/vault/hmacSecretName'"),
    ],
    ids=[
        "sync-without-rbac",
        "no-daemonset",
        "audience",
        "unknown-unit",
        "bare-number",
        "bad-interval",
        "rotation-without-tokens",
        "vault-audience-missing",
        "fallback-without-rbac",
        "resync-bare-number",
        "cleanup-grace",
        "hmac-name-empty",
    ],
)
def test_values_that_cannot_work_say_what_to_change(
    helm: Helm, sets: list[str], expected: str
) -> None:
    assert expected in helm.template_error(sets=sets)


def test_csidriver_defaults_as_upstream(helm: Helm) -> None:
    driver = one(helm.template(), "CSIDriver")

    assert driver["metadata"]["name"] == "secrets-store.csi.k8s.io"
    assert driver["spec"] == {
        "podInfoOnMount": True,
        "attachRequired": False,
        "volumeLifecycleModes": ["Ephemeral"],
        "requiresRepublish": False,
    }


def test_csidriver_follows_rotation_and_token_requests(helm: Helm) -> None:
    spec = one(helm.template(FULL, kube_version="1.35.0"), "CSIDriver")["spec"]

    assert spec["requiresRepublish"] is True
    assert spec["tokenRequests"] == [
        {"audience": "vault", "expirationSeconds": 3600},
        {"audience": "sts.amazonaws.com"},
    ]
    assert spec["serviceAccountTokenInSecrets"] is True
    assert spec["fsGroupPolicy"] == "None"

    older = one(helm.template(FULL, kube_version="1.34.0"), "CSIDriver")["spec"]
    assert "serviceAccountTokenInSecrets" not in older, "the field exists from Kubernetes 1.35"


def rules(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [rule for o in objects if o["kind"] in ("ClusterRole", "Role") for rule in o["rules"]]


def test_secret_access_only_with_sync(helm: Helm) -> None:
    """Beyond its own version-key Secret (read by name, created once, in its namespace), the
    agent touches Secrets only with syncSecret.enabled."""

    def touches_secrets(objects: list[dict[str, Any]]) -> bool:
        cluster_wide = [o for o in objects if o["kind"] == "ClusterRole"]
        return any("secrets" in rule["resources"] for rule in rules(cluster_wide))

    objects = helm.template(namespace="secrets-store")
    assert not touches_secrets(objects)
    assert touches_secrets(helm.template(sets=["syncSecret.enabled=true"]))
    key_role = one(objects, "Role", "rel-secrets-store-agent-version-key")
    assert key_role["metadata"]["namespace"] == "secrets-store"
    assert key_role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["secrets-store-agent-hmac-key"],
            "verbs": ["get"],
        },
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
    ]


def test_agent_role_bound_to_the_daemonsets_service_account(helm: Helm) -> None:
    objects = helm.template(namespace="secrets-store")
    account = one(objects, "DaemonSet")["spec"]["template"]["spec"]["serviceAccountName"]
    role = one(objects, "ClusterRole", "rel-secrets-store-agent-secretproviderclasses")
    binding = one(objects, "ClusterRoleBinding")

    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account, "namespace": "secrets-store"}
    ]
    assert granted(role) == {
        ("", "events", "create"),
        ("", "events", "patch"),
        ("", "pods", "get"),
        ("", "pods", "list"),
        ("", "pods", "watch"),
        ("", "serviceaccounts", "get"),
        ("", "nodes", "get"),
        *{
            ("secrets-store.csi.x-k8s.io", "secretproviderclasses", verb)
            for verb in ("get", "list", "watch")
        },
        *{
            ("secrets-store.csi.x-k8s.io", "secretproviderclasspodstatuses", verb)
            for verb in ("create", "delete", "get", "list", "patch")
        },
    }


def granted(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def agent_grants(helm: Helm, sets: list[str]) -> set[tuple[str, ...]]:
    """(group, resource, verb) of the agent's ClusterRole; (kind, group, resource, verb) of the
    version-key and sync roles."""
    objects = helm.template(sets=sets)
    role = one(objects, "ClusterRole", "rel-secrets-store-agent-secretproviderclasses")
    found: set[tuple[str, ...]] = set(granted(role))
    for kind in ("Role", "ClusterRole"):
        for o in objects:
            if o["kind"] == kind and o["metadata"]["name"].endswith(
                ("-version-key", "-syncsecret")
            ):
                found |= {(kind, *grant) for grant in granted(o)}
    return found


@pytest.mark.parametrize(
    ("sets", "present", "absent"),
    [
        (
            ["providers.aws.enabled=false", "providers.azure.enabled=false"],
            {("", "serviceaccounts", "get")},  # gcp still reads them
            {("", "nodes", "get")},
        ),
        (
            [f"providers.{p}.enabled=false" for p in ("aws", "azure", "gcp")],
            {("Role", "", "secrets", "get")},
            {("", "serviceaccounts", "get"), ("", "nodes", "get")},
        ),
        (
            ["providers.vault.enabled=false"],
            {("", "serviceaccounts", "get")},
            {("Role", "", "secrets", "get"), ("Role", "", "secrets", "create")},
        ),
        (
            ["tokenRequestFallback=true"],
            {("", "serviceaccounts/token", "create")},
            set(),
        ),
        (
            [],
            set(),
            {("", "serviceaccounts/token", "create"), ("ClusterRole", "", "secrets", "get")},
        ),
        (
            ["syncSecret.enabled=true"],
            {
                ("ClusterRole", "", "secrets", verb)
                for verb in ("create", "delete", "get", "list", "patch")
            },
            {("ClusterRole", "", "secrets", verb) for verb in ("update", "watch")},
        ),
    ],
    ids=["gcp-only-cloud", "vault-only", "no-vault", "token-fallback", "default", "sync"],
)
def test_each_grant_only_where_a_provider_or_setting_needs_it(
    helm: Helm,
    sets: list[str],
    present: set[tuple[str, ...]],
    absent: set[tuple[str, ...]],
) -> None:
    grants = agent_grants(helm, sets)
    assert present <= grants
    assert not absent & grants


def test_rbac_install_false_installs_no_roles(helm: Helm) -> None:
    kinds = {o["kind"] for o in helm.template(sets=["rbac.install=false"])}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
