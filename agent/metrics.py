"""Prometheus metrics with the upstream driver's names and labels (upstream §12.1).

Dashboards and alerts written for the upstream driver keep working because the exposed series
names (``node_publish_total`` ...) and label sets are identical. Labels only ever carry provider
names and ``error_type`` reason codes, never request data, so no secret can leak through them.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from agent.process_metrics import register_process_collectors

# generate_latest emits the classic text format; announce it as such (the client library's
# CONTENT_TYPE_LATEST advertises 1.0.0, which some older scrapers do not know).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

OS_TYPE = "windows" if sys.platform == "win32" else "linux"


def exponential_buckets_range(low: float, high: float, count: int) -> tuple[float, ...]:
    """Go's ``prometheus.ExponentialBucketsRange``, rounded so ``le`` labels stay readable."""
    growth = math.pow(high / low, 1.0 / (count - 1))
    return tuple(round(low * math.pow(growth, i), 4) for i in range(count))


# Upstream's view for every histogram: 11 geometric bounds from 0.1 s to 2 s.
UPSTREAM_BUCKETS = exponential_buckets_range(0.1, 2.0, 11)
# Our in-process publishes take milliseconds; finer bounds first keep the histogram useful.
PUBLISH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, *UPSTREAM_BUCKETS)


class _WithoutCreated(Collector):
    """A view of a registry that drops ``*_created`` samples.

    prometheus_client only offers a process-global switch for these; filtering here keeps the
    exposition identical to upstream's without changing anyone else's registry.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        for metric in self._registry.collect():
            metric.samples = [s for s in metric.samples if not s.name.endswith("_created")]
            yield metric


class Metrics:
    """The agent's instruments, in a registry of their own (tests can build many)."""

    def __init__(self, os_type: str = OS_TYPE) -> None:
        self.os_type = os_type
        self.registry = CollectorRegistry(auto_describe=True)
        self._view = _WithoutCreated(self.registry)
        reg = self.registry
        # prometheus_client appends "_total" to counter names itself.
        self.node_publish = Counter(
            "node_publish",
            "Total number of successful node publish calls",
            ["provider", "os_type"],
            registry=reg,
        )
        self.node_unpublish = Counter(
            "node_unpublish",
            "Total number of successful node unpublish calls",
            ["os_type"],
            registry=reg,
        )
        self.node_publish_error = Counter(
            "node_publish_error",
            "Total number of node publish calls with errors",
            ["provider", "error_type", "os_type"],
            registry=reg,
        )
        self.node_unpublish_error = Counter(
            "node_unpublish_error",
            "Total number of node unpublish calls with errors",
            ["os_type"],
            registry=reg,
        )
        self.node_publish_duration = Histogram(
            "node_publish_duration_seconds",
            "Duration of node publish calls in seconds",
            ["provider", "os_type"],
            buckets=PUBLISH_BUCKETS,
            registry=reg,
        )
        self._define_rotation(reg)
        self._define_sync(reg)
        # controller-runtime's client metric, on the upstream driver's endpoint too.
        self.rest_client_requests = Counter(
            "rest_client_requests",
            "Number of HTTP requests to the Kubernetes API, partitioned by code, method, host",
            ["code", "method", "host"],
            registry=reg,
        )
        # client_golang's process collector, on the upstream driver's endpoint too.
        register_process_collectors(reg)

    def _define_rotation(self, reg: CollectorRegistry) -> None:
        # Defined now so the series names are stable before the rotation scheduler records them.
        self.rotation_reconcile = Counter(
            "rotation_reconcile",
            "Total number of rotation reconciles",
            ["provider", "os_type", "rotated"],
            registry=reg,
        )
        self.rotation_reconcile_error = Counter(
            "rotation_reconcile_error",
            "Total number of rotation reconciles with errors",
            ["provider", "error_type", "os_type", "rotated"],
            registry=reg,
        )
        self.rotation_reconcile_duration = Histogram(
            "rotation_reconcile_duration_sec",
            "Duration of rotation reconciles in seconds",
            ["os_type"],
            buckets=UPSTREAM_BUCKETS,
            registry=reg,
        )
        # Ours: what coalescing and backoff do (docs/rotation.md).
        self.rotation_provider_fetch = Counter(
            "rotation_provider_fetch",
            "Provider fetches made by the rotation scheduler (one per group of volumes)",
            ["provider", "os_type"],
            registry=reg,
        )
        self.rotation_fetches_saved = Counter(
            "rotation_fetches_saved",
            "Provider fetches saved by coalescing volumes with the same fetch key",
            ["provider", "os_type"],
            registry=reg,
        )
        self.rotation_provider_backoff = Gauge(
            "rotation_provider_backoff_seconds",
            "Delay imposed on a throttling provider, in seconds (0: not backing off)",
            ["provider", "os_type"],
            registry=reg,
        )
        self.rotation_volumes_due = Gauge(
            "rotation_volumes_due",
            "Volumes due for rotation at the scheduler's last pass (started or waiting)",
            ["os_type"],
            registry=reg,
        )

    def _define_sync(self, reg: CollectorRegistry) -> None:
        # Upstream defines these two (v1.6 no longer records them); names and labels as there.
        self.sync_k8s_secret = Counter(
            "sync_k8s_secret",
            "Total number of k8s secrets synced",
            ["provider", "os_type"],
            registry=reg,
        )
        self.k8s_secret_duration = Histogram(
            "k8s_secret_duration_sec",
            "Distribution of how long it took to sync k8s secret",
            ["os_type"],
            buckets=UPSTREAM_BUCKETS,
            registry=reg,
        )
        # Ours: failures by reason, which upstream only shows as events.
        self.sync_k8s_secret_error = Counter(
            "sync_k8s_secret_error",
            "Total number of k8s secrets (or secretObjects entries) that could not be synced",
            ["provider", "error_type", "os_type"],
            registry=reg,
        )

    def secrets_synced(self, provider: str, count: int, seconds: float) -> None:
        if count:
            self.sync_k8s_secret.labels(provider=provider, os_type=self.os_type).inc(count)
        self.k8s_secret_duration.labels(os_type=self.os_type).observe(seconds)

    def secret_sync_failed(self, provider: str, error_type: str) -> None:
        self.sync_k8s_secret_error.labels(
            provider=provider, error_type=error_type, os_type=self.os_type
        ).inc()

    def api_request(self, host: str, method: str, code: str) -> None:
        self.rest_client_requests.labels(code=code, method=method, host=host).inc()

    def publish_succeeded(self, provider: str, seconds: float) -> None:
        self.node_publish.labels(provider=provider, os_type=self.os_type).inc()
        self.node_publish_duration.labels(provider=provider, os_type=self.os_type).observe(seconds)

    def publish_failed(self, provider: str, error_type: str, seconds: float) -> None:
        self.node_publish_error.labels(
            provider=provider, error_type=error_type, os_type=self.os_type
        ).inc()
        self.node_publish_duration.labels(provider=provider, os_type=self.os_type).observe(seconds)

    def unpublish_succeeded(self) -> None:
        self.node_unpublish.labels(os_type=self.os_type).inc()

    def unpublish_failed(self) -> None:
        self.node_unpublish_error.labels(os_type=self.os_type).inc()

    def remount_done(self, provider: str, rotated: bool, error_type: str, seconds: float) -> None:
        """The rotation series of a refetching republish. Its node_publish series were counted
        by publish_succeeded, or publish_failed when it failed: kubelet saw success (the error
        is masked), but upstream counts it in node_publish_error_total alone."""
        if error_type:
            self.rotation_failed(provider, error_type, rotated)
            return
        self.rotation_succeeded(provider, rotated, seconds)

    def rotation_succeeded(self, provider: str, rotated: bool, seconds: float) -> None:
        self.rotation_reconcile.labels(
            provider=provider, os_type=self.os_type, rotated=_flag(rotated)
        ).inc()
        self.rotation_reconcile_duration.labels(os_type=self.os_type).observe(seconds)

    def rotation_failed(self, provider: str, error_type: str, rotated: bool = False) -> None:
        self.rotation_reconcile_error.labels(
            provider=provider, error_type=error_type, os_type=self.os_type, rotated=_flag(rotated)
        ).inc()

    def rotation_fetched(self, provider: str, volumes: int) -> None:
        self.rotation_provider_fetch.labels(provider=provider, os_type=self.os_type).inc()
        if volumes > 1:
            saved = self.rotation_fetches_saved.labels(provider=provider, os_type=self.os_type)
            saved.inc(volumes - 1)

    def provider_backoff(self, provider: str, seconds: float) -> None:
        gauge = self.rotation_provider_backoff.labels(provider=provider, os_type=self.os_type)
        gauge.set(seconds)

    def volumes_due(self, count: int) -> None:
        self.rotation_volumes_due.labels(os_type=self.os_type).set(count)

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition and its Content-Type, ready for an HTTP response."""
        return generate_latest(self._view), CONTENT_TYPE


def _flag(value: bool) -> str:
    # Go's strconv.FormatBool, as upstream records the label.
    return "true" if value else "false"
