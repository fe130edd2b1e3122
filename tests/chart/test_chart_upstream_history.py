"""Values files written for older upstream charts: every key any upstream release from v0.3.0 to
v1.6.0 shipped is accepted, renders valid manifests, and the ones with no effect here are named
in the NOTES with why; a key no upstream release shipped is still refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.chart.conftest import (
    CHART,
    OLDEST_KUBERNETES,
    UPSTREAM_DEFAULTS,
    UPSTREAM_HISTORIC,
    Helm,
)
from tests.chart.test_chart_manifests import NEWEST_KUBERNETES, validation_errors
from tests.chart.test_chart_values import leaf_keys, without_images

NO_EFFECT_HEADING = "These upstream values have no effect on this chart"


def keys_of(path: Path) -> set[str]:
    return leaf_keys(yaml.safe_load(path.read_text()))


def historic_keys_not_in_our_values() -> set[str]:
    return keys_of(UPSTREAM_HISTORIC) - keys_of(CHART / "values.yaml")


def test_the_historic_file_holds_every_key_of_the_current_release() -> None:
    assert keys_of(UPSTREAM_DEFAULTS) - keys_of(UPSTREAM_HISTORIC) == {
        "nameOverride",
        "fullnameOverride",
    }, "v1.6.0's keys (the chart's templates read these two; its values.yaml does not list them)"
    assert historic_keys_not_in_our_values() == {"filteredWatchSecret"}


@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, NEWEST_KUBERNETES])
def test_every_historic_key_renders_valid_kubernetes(
    helm: Helm, tmp_path: Path, version: str
) -> None:
    objects = helm.template(without_images(tmp_path, UPSTREAM_HISTORIC), kube_version=version)

    assert validation_errors(objects, version) == []
    assert {"DaemonSet", "CSIDriver", "ClusterRole"} <= {o["kind"] for o in objects}


def test_notes_name_each_historic_key_without_effect(helm: Helm, tmp_path: Path) -> None:
    notes = helm.install_notes(without_images(tmp_path, UPSTREAM_HISTORIC))

    ignored = notes.split(NO_EFFECT_HEADING)[1].split("\n\n")[0]
    named = {line[2:].split(":")[0] for line in ignored.splitlines() if line.startswith("- ")}
    assert named == historic_keys_not_in_our_values()
    assert "never watches Secrets cluster-wide" in ignored


def test_notes_name_upstream_settings_this_chart_cannot_honour(helm: Helm) -> None:
    notes = helm.install_notes(sets=["rbac.pspEnabled=true", "linux.crds.enabled=false"])

    assert "- rbac.pspEnabled: PodSecurityPolicy was removed in Kubernetes 1.25" in notes
    assert "- linux.crds.enabled: " in notes and "--skip-crds" in notes
    assert "filteredWatchSecret" not in notes


def test_default_notes_have_no_ignored_values(helm: Helm) -> None:
    assert NO_EFFECT_HEADING not in helm.install_notes()


@pytest.mark.parametrize(
    ("item", "key"),
    [
        ("filteredWatchSecrets=true", "filteredWatchSecrets"),
        ("linux.filteredWatchSecret=true", "filteredWatchSecret"),
        ("watchSecrets=false", "watchSecrets"),
    ],
    ids=["misspelt", "historic-key-misplaced", "never-upstream"],
)
def test_a_key_no_upstream_release_shipped_is_refused(helm: Helm, item: str, key: str) -> None:
    message = helm.template_error(sets=[item])

    assert f"additional properties '{key}' not allowed" in message
