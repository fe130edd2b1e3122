"""The ``process_*`` series of upstream's endpoint (client_golang's process collector, §12.1).

Dashboards and alerts for the node DaemonSet (memory, CPU, file descriptors, restarts) query
these names, so the agent exports them with client_golang's names, types, units and HELP texts.
prometheus_client's ``ProcessCollector`` already gives six of them from ``/proc/self``:
``process_cpu_seconds_total``, ``process_open_fds``, ``process_max_fds``,
``process_virtual_memory_bytes``, ``process_resident_memory_bytes``,
``process_start_time_seconds``. :class:`ProcessExtras` adds the three it lacks, read the way
client_golang's procfs library reads them.

Linux only: every series comes from ``/proc``. Where there is none (Windows) the collectors
export nothing and a scrape still succeeds; client_golang's Windows collector is not mirrored.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# procfs reads an "unlimited" rlimit as the largest uint64; upstream's endpoint then shows
# process_virtual_memory_max_bytes 1.8446744073709552e+19, and so do we.
UNLIMITED = float(2**64 - 1)


def register_process_collectors(registry: CollectorRegistry, proc: str = "/proc") -> None:
    """Add the nine ``process_*`` families to ``registry`` (none where ``proc`` is missing)."""
    ProcessCollector(proc=proc, registry=registry)
    registry.register(ProcessExtras(proc))


class ProcessExtras(Collector):
    """``process_virtual_memory_max_bytes`` (the soft ``RLIMIT_AS`` from ``limits``) and
    ``process_network_{receive,transmit}_bytes_total`` (``IpExt`` ``InOctets``/``OutOctets``
    from ``net/netstat``).

    The network counters are the totals of the process's network namespace (the pod's), not
    of the process alone: that is what the kernel offers and what upstream's endpoint shows.
    Each family is left out when its file cannot be read, as client_golang does.
    """

    def __init__(self, proc: str = "/proc") -> None:
        self._self = os.path.join(proc, "self")

    def collect(self) -> Iterable[Metric]:
        return [*self._address_space_limit(), *self._network()]

    def _address_space_limit(self) -> list[Metric]:
        try:
            with open(os.path.join(self._self, "limits"), "rb") as limits:
                lines = limits.read().splitlines()
        except OSError:
            return []
        for line in lines:
            if line.startswith(b"Max address space"):
                soft = line.split()[3]
                value = UNLIMITED if soft == b"unlimited" else float(soft)
                help_text = "Maximum amount of virtual memory available in bytes."
                return [
                    GaugeMetricFamily("process_virtual_memory_max_bytes", help_text, value=value)
                ]
        return []

    def _network(self) -> list[Metric]:
        try:
            with open(os.path.join(self._self, "net", "netstat"), "rb") as netstat:
                ip_ext = _section(netstat.read().splitlines(), b"IpExt:")
        except OSError:
            return []
        # A kernel without the counters reads as 0, as in client_golang.
        return [
            CounterMetricFamily(
                "process_network_receive_bytes_total",
                "Number of bytes received by the process over the network.",
                value=ip_ext.get(b"InOctets", 0.0),
            ),
            CounterMetricFamily(
                "process_network_transmit_bytes_total",
                "Number of bytes sent by the process over the network.",
                value=ip_ext.get(b"OutOctets", 0.0),
            ),
        ]


def _section(lines: Sequence[bytes], prefix: bytes) -> dict[bytes, float]:
    """One section of ``net/netstat``: a line of names, then a line of values, same prefix."""
    rows = [line.split()[1:] for line in lines if line.startswith(prefix)]
    if len(rows) < 2:
        return {}
    names, values = rows[0], rows[1]
    return {name: float(value) for name, value in zip(names, values, strict=False)}
