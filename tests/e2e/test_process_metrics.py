"""The agent's own process_* series, as a Prometheus scrape of a real agent process sees them."""

from __future__ import annotations

import resource
import time

from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import AgentProcess, Agents

# What procfs (and so upstream's endpoint) reports for an unlimited rlimit: the largest uint64.
UNLIMITED = float(2**64 - 1)


def process_series(agent: AgentProcess) -> dict[str, tuple[str, float]]:
    """{sample name: (family type, value)} of the unlabelled process_* samples of one scrape."""
    status, body = agent.get("metrics", "/metrics")
    assert status == 200
    return {
        sample.name: (family.type, sample.value)
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if sample.name.startswith("process_") and not sample.labels
    }


def soft_limit(pid: int, name: int) -> float:
    soft = resource.prlimit(pid, name)[0]
    return UNLIMITED if soft == resource.RLIM_INFINITY else float(soft)


def test_the_agent_exports_its_own_process_metrics(agents: Agents) -> None:
    started_after = time.time()
    agent = agents.start()
    first = process_series(agent)

    assert {name: kind for name, (kind, _) in first.items()} == {
        "process_cpu_seconds_total": "counter",
        "process_open_fds": "gauge",
        "process_max_fds": "gauge",
        "process_virtual_memory_bytes": "gauge",
        "process_virtual_memory_max_bytes": "gauge",
        "process_resident_memory_bytes": "gauge",
        "process_start_time_seconds": "gauge",
        "process_network_receive_bytes_total": "counter",
        "process_network_transmit_bytes_total": "counter",
    }
    value = {name: sample for name, (_, sample) in first.items()}
    # The kernel's boot time has whole seconds; the start time is the agent's, not the test's.
    assert started_after - 1.5 <= value["process_start_time_seconds"] <= time.time() + 0.5
    assert 0 < value["process_resident_memory_bytes"] <= value["process_virtual_memory_bytes"]
    assert value["process_cpu_seconds_total"] > 0  # importing the agent alone takes CPU
    assert 0 < value["process_open_fds"] < value["process_max_fds"]
    assert value["process_max_fds"] == soft_limit(agent.pid, resource.RLIMIT_NOFILE)
    assert value["process_virtual_memory_max_bytes"] == soft_limit(agent.pid, resource.RLIMIT_AS)
    assert value["process_network_receive_bytes_total"] > 0  # the scrape came over loopback
    assert value["process_network_transmit_bytes_total"] > 0


def test_limits_are_read_at_each_scrape(agents: Agents) -> None:
    agent = agents.start()
    assert process_series(agent)["process_virtual_memory_max_bytes"][1] == soft_limit(
        agent.pid, resource.RLIMIT_AS
    )
    # Finite limits, as a container runtime or `ulimit` would set them (hard limits unchanged).
    hard_as = resource.prlimit(agent.pid, resource.RLIMIT_AS)[1]
    resource.prlimit(agent.pid, resource.RLIMIT_AS, (64 << 30, hard_as))
    hard_files = resource.prlimit(agent.pid, resource.RLIMIT_NOFILE)[1]
    resource.prlimit(agent.pid, resource.RLIMIT_NOFILE, (1537, hard_files))

    after = process_series(agent)
    assert after["process_virtual_memory_max_bytes"][1] == 64 << 30
    assert after["process_max_fds"][1] == 1537
