"""docs/migration.md's values table names every key this chart adds to upstream's."""

from __future__ import annotations

import re

import yaml

from tests.chart.conftest import CHART, REPO, UPSTREAM_DEFAULTS
from tests.chart.test_chart_values import leaf_keys


def test_every_new_value_is_in_the_migration_table() -> None:
    ours = leaf_keys(yaml.safe_load((CHART / "values.yaml").read_text()))
    new = ours - leaf_keys(yaml.safe_load(UPSTREAM_DEFAULTS.read_text()))
    table = (REPO / "docs" / "migration.md").read_text().split("## Every values difference")[1]
    named = set(re.findall(r"`([A-Za-z.]+(?:\.\*)?)`", table))

    def covered(key: str) -> bool:
        return key in named or any(
            name.endswith(".*") and (key + ".").startswith(name[:-1]) for name in named
        )

    assert sorted(key for key in new if not key.startswith("windows.") and not covered(key)) == []
