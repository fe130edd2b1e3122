"""docs/migration.md's values table names every key this chart adds to upstream's, and every
upstream key (of any release) missing from this chart's values.yaml."""

from __future__ import annotations

import re

import yaml

from tests.chart.conftest import CHART, REPO, UPSTREAM_DEFAULTS, UPSTREAM_HISTORIC
from tests.chart.test_chart_values import leaf_keys


def test_every_new_value_is_in_the_migration_table() -> None:
    ours = leaf_keys(yaml.safe_load((CHART / "values.yaml").read_text()))
    new = ours - leaf_keys(yaml.safe_load(UPSTREAM_DEFAULTS.read_text()))
    historic = leaf_keys(yaml.safe_load(UPSTREAM_HISTORIC.read_text())) - ours
    table = (REPO / "docs" / "migration.md").read_text().split("## Every values difference")[1]
    named = set(re.findall(r"`([A-Za-z.]+(?:\.\*)?)`", table))

    def covered(key: str) -> bool:
        return key in named or any(
            name.endswith(".*") and (key + ".").startswith(name[:-1]) for name in named
        )

    assert sorted(key for key in new if not key.startswith("windows.") and not covered(key)) == []
    assert sorted(key for key in historic if not covered(key)) == []
