"""The chart as Helm renders it: ``helm`` (scripts/helm.py, from the PyPI wheel) runs offline
against charts/secrets-store-agent; objects come back as dicts, failures as Helm's message."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.chart_rbac import helm_path

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "secrets-store-agent"
FULL = CHART / "ci" / "full-values.yaml"
OPENSHIFT = CHART / "values-openshift.yaml"
UPSTREAM_DEFAULTS = Path(__file__).with_name("upstream_default_values.yaml")
# Every key any upstream release from v0.3.0 to v1.6.0 shipped (source in its header).
UPSTREAM_HISTORIC = Path(__file__).with_name("upstream_historic_values.yaml")
# The chart's kubeVersion floor, and the newest Kubernetes kubernetes-validate knows.
OLDEST_KUBERNETES = "1.30.0"
NAMESPACE = "kube-system"
# Values files the suite renders: (id, files).
VALUES_FILES = {"default": (), "full": (FULL,), "openshift": (OPENSHIFT,)}


@dataclass(frozen=True)
class Helm:
    binary: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), *args], capture_output=True, text=True, timeout=60, check=False
        )

    def template_args(
        self,
        values: Sequence[Path],
        sets: Iterable[str],
        namespace: str,
        kube_version: str,
    ) -> list[str]:
        args = ["template", "rel", str(CHART), "--namespace", namespace, "--include-crds"]
        args += ["--kube-version", kube_version]
        for path in values:
            args += ["-f", str(path)]
        for item in sets:
            args += ["--set", item]
        return args

    def template(
        self,
        *values: Path,
        sets: Iterable[str] = (),
        namespace: str = NAMESPACE,
        kube_version: str = "1.35.0",
    ) -> list[dict[str, Any]]:
        done = self.run(*self.template_args(values, sets, namespace, kube_version))
        assert done.returncode == 0, done.stderr
        return [doc for doc in yaml.safe_load_all(done.stdout) if doc]

    def install_notes(self, *values: Path, sets: Iterable[str] = ()) -> str:
        """The NOTES `helm install` prints, from a client-side dry run (no cluster)."""
        args = ["install", "rel", str(CHART), "--namespace", NAMESPACE, "--dry-run=client"]
        for path in values:
            args += ["-f", str(path)]
        for item in sets:
            args += ["--set", item]
        done = self.run(*args)
        assert done.returncode == 0, done.stderr
        return done.stdout.split("\nNOTES:\n", 1)[1]

    def template_error(
        self, *values: Path, sets: Iterable[str] = (), namespace: str = NAMESPACE
    ) -> str:
        """Helm's message for values that must not render."""
        done = self.run(*self.template_args(values, sets, namespace, "1.35.0"))
        assert done.returncode != 0, "rendered values that should have been refused"
        return done.stderr


@pytest.fixture(scope="session")
def helm() -> Helm:
    return Helm(helm_path())


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def container(objects: list[dict[str, Any]], name: str) -> dict[str, Any]:
    pod = one(objects, "DaemonSet")["spec"]["template"]["spec"]
    (found,) = [c for c in pod["containers"] if c["name"] == name]
    return dict(found)
