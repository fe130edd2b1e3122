"""Metrics: upstream's series names and labels, exactly."""

from __future__ import annotations

import itertools
import math
import re

from agent.metrics import PUBLISH_BUCKETS, UPSTREAM_BUCKETS, Metrics


def lines(metrics: Metrics) -> list[str]:
    body, _ = metrics.exposition()
    return [line for line in body.decode().splitlines() if not line.startswith("#")]


def test_publish_counter_has_upstream_name_and_labels() -> None:
    metrics = Metrics(os_type="linux")
    metrics.publish_succeeded("vault", 0.004)

    assert 'node_publish_total{os_type="linux",provider="vault"} 1.0' in lines(metrics)


def test_error_and_unpublish_counters() -> None:
    metrics = Metrics(os_type="linux")
    metrics.publish_failed("", "SecretProviderClassNotFound", 0.001)
    metrics.publish_failed("", "SecretProviderClassNotFound", 0.001)
    metrics.unpublish_succeeded()
    metrics.unpublish_failed()

    out = lines(metrics)
    assert (
        'node_publish_error_total{error_type="SecretProviderClassNotFound",'
        'os_type="linux",provider=""} 2.0'
    ) in out
    assert 'node_unpublish_total{os_type="linux"} 1.0' in out
    assert 'node_unpublish_error_total{os_type="linux"} 1.0' in out


def test_no_created_series_and_classic_content_type() -> None:
    metrics = Metrics()
    metrics.publish_succeeded("vault", 0.01)
    metrics.rotation_succeeded("vault", rotated=True, seconds=0.2)
    body, content_type = metrics.exposition()

    assert b"_created" not in body
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"


def test_series_names_are_exactly_upstreams() -> None:
    metrics = Metrics(os_type="linux")
    metrics.publish_succeeded("vault", 0.01)
    metrics.publish_failed("vault", "GRPCProviderError", 0.01)
    metrics.unpublish_succeeded()
    metrics.unpublish_failed()
    metrics.rotation_succeeded("vault", rotated=False, seconds=0.3)
    metrics.rotation_failed("vault", "GRPCProviderError")

    names = {re.split(r"[{ ]", line)[0] for line in lines(metrics)}
    assert names == {
        "node_publish_total",
        "node_publish_error_total",
        "node_unpublish_total",
        "node_unpublish_error_total",
        "node_publish_duration_seconds_bucket",
        "node_publish_duration_seconds_count",
        "node_publish_duration_seconds_sum",
        "rotation_reconcile_total",
        "rotation_reconcile_error_total",
        "rotation_reconcile_duration_sec_bucket",
        "rotation_reconcile_duration_sec_count",
        "rotation_reconcile_duration_sec_sum",
        # client_golang's process collector (Linux)
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_max_fds",
        "process_virtual_memory_bytes",
        "process_virtual_memory_max_bytes",
        "process_resident_memory_bytes",
        "process_start_time_seconds",
        "process_network_receive_bytes_total",
        "process_network_transmit_bytes_total",
    }
    out = lines(metrics)
    assert 'rotation_reconcile_total{os_type="linux",provider="vault",rotated="false"} 1.0' in out
    assert (
        'rotation_reconcile_error_total{error_type="GRPCProviderError",os_type="linux",'
        'provider="vault",rotated="false"} 1.0'
    ) in out


def test_upstream_buckets_are_exponential_buckets_range() -> None:
    assert len(UPSTREAM_BUCKETS) == 11
    assert UPSTREAM_BUCKETS[0] == 0.1
    assert UPSTREAM_BUCKETS[-1] == 2.0
    ratios = [b / a for a, b in itertools.pairwise(UPSTREAM_BUCKETS)]
    assert all(math.isclose(r, 20 ** (1 / 10), rel_tol=1e-3) for r in ratios)
    assert PUBLISH_BUCKETS[:6] == (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05)
    assert PUBLISH_BUCKETS[6:] == UPSTREAM_BUCKETS


def test_publish_histogram_buckets_and_observation() -> None:
    metrics = Metrics(os_type="linux")
    metrics.publish_succeeded("vault", 0.003)

    buckets = [
        line
        for line in lines(metrics)
        if line.startswith("node_publish_duration_seconds_bucket") and 'provider="vault"' in line
    ]
    bounds = [re.search(r'le="([^"]+)"', line).group(1) for line in buckets]  # type: ignore[union-attr]
    assert bounds == [
        *("0.001", "0.0025", "0.005", "0.01", "0.025", "0.05"),
        *("0.1", "0.1349", "0.1821", "0.2456", "0.3314", "0.4472", "0.6034", "0.8142"),
        *("1.0986", "1.4823", "2.0", "+Inf"),
    ]
    assert buckets[1].endswith(" 0.0")  # 0.0025
    assert buckets[2].endswith(" 1.0")  # 0.005
    assert 'node_publish_duration_seconds_count{os_type="linux",provider="vault"} 1.0' in (
        lines(metrics)
    )


def test_instances_have_independent_registries() -> None:
    first, second = Metrics(), Metrics(os_type="windows")
    first.publish_succeeded("vault", 0.01)
    second.publish_succeeded("aws", 0.01)

    assert not any("aws" in line for line in lines(first))
    assert 'node_publish_total{os_type="windows",provider="aws"} 1.0' in lines(second)
