"""The process_* families: client_golang's names, types and HELP texts; nothing without /proc."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from agent.process_metrics import register_process_collectors

# client_golang v1.23 (upstream v1.6.0's), prometheus/process_collector.go, Linux.
CLIENT_GOLANG = {
    "process_cpu_seconds_total": ("counter", "Total user and system CPU time spent in seconds."),
    "process_open_fds": ("gauge", "Number of open file descriptors."),
    "process_max_fds": ("gauge", "Maximum number of open file descriptors."),
    "process_virtual_memory_bytes": ("gauge", "Virtual memory size in bytes."),
    "process_virtual_memory_max_bytes": (
        "gauge",
        "Maximum amount of virtual memory available in bytes.",
    ),
    "process_resident_memory_bytes": ("gauge", "Resident memory size in bytes."),
    "process_start_time_seconds": (
        "gauge",
        "Start time of the process since unix epoch in seconds.",
    ),
    "process_network_receive_bytes_total": (
        "counter",
        "Number of bytes received by the process over the network.",
    ),
    "process_network_transmit_bytes_total": (
        "counter",
        "Number of bytes sent by the process over the network.",
    ),
}


def test_every_family_has_client_golangs_name_type_and_help() -> None:
    registry = CollectorRegistry(auto_describe=True)
    register_process_collectors(registry)
    text = generate_latest(registry).decode()

    described = {
        line.split()[2]: line for line in text.splitlines() if line.startswith(("# HELP", "# TYPE"))
    }
    assert set(described) == set(CLIENT_GOLANG)
    for name, (kind, help_text) in CLIENT_GOLANG.items():
        assert f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n" in text


def test_without_proc_nothing_is_exported_and_the_scrape_succeeds(tmp_path: Path) -> None:
    # Windows has no /proc: the agent's endpoint then carries only its own families.
    registry = CollectorRegistry(auto_describe=True)
    register_process_collectors(registry, proc=str(tmp_path / "no-proc"))

    assert generate_latest(registry) == b""
