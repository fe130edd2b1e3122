"""docs/metrics.md lists exactly the metrics the agent exports, with their types and labels."""

from __future__ import annotations

import re
from pathlib import Path

from agent.metrics import Metrics

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
ROW = re.compile(r"^\| `([a-z0-9_]+)` \| (counter|gauge|histogram) \| ([^|]*) \|", re.M)


def documented() -> dict[str, tuple[str, frozenset[str]]]:
    return {
        name: (kind, frozenset(re.findall(r"`([a-z_]+)`", labels)))
        for name, kind, labels in ROW.findall(DOC.read_text())
    }


def exported() -> dict[str, tuple[str, frozenset[str]]]:
    """Every instrument, each touched once through the agent's own recording methods."""
    metrics = Metrics()
    metrics.publish_succeeded("vault", 0.1)
    metrics.publish_failed("vault", "GRPCProviderError", 0.1)
    metrics.unpublish_succeeded()
    metrics.unpublish_failed()
    metrics.remount_done("vault", True, "", 0.1)
    metrics.remount_done("vault", False, "GRPCProviderError", 0.1)
    metrics.rotation_fetched("vault", 3)
    metrics.provider_backoff("vault", 2.0)
    metrics.volumes_due(4)
    metrics.secrets_synced("vault", 1, 0.1)
    metrics.secret_sync_failed("vault", "KubernetesAPIError")
    metrics.api_request("10.0.0.1:443", "GET", "200")
    found = {}
    for family in metrics.registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        labels = frozenset(key for s in family.samples for key in s.labels if key != "le")
        found[name] = (family.type, labels)
    return found


def test_the_reference_lists_every_exported_metric_and_nothing_else() -> None:
    assert documented() == exported()


def test_every_family_appears_in_the_exposition() -> None:
    text = Metrics().exposition()[0].decode()
    for name, (kind, _labels) in documented().items():
        assert f"# TYPE {name} {kind}" in text, name
