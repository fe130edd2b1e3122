"""The kubelet benchmark still runs end to end (standalone and Kubernetes mode, a few samples),
so the figures in docs/benchmarks.md can be measured again. Nothing here is timed: a figure is
only required to exist and be a duration."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import go_kubelet
from tests.support.mounts import is_root

REPO = Path(__file__).resolve().parents[2]
FEW_SAMPLES = ("--starts", "1", "--rounds", "3", "--burst", "2")
pytestmark = pytest.mark.skipif(not is_root(), reason="the benchmark's agents mount tmpfs")


def run_bench(*args: str) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-m", "bench.kubelet_bench", *FEW_SAMPLES, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    results: dict[str, Any] = json.loads(completed.stdout)
    return results


def assert_durations(figures: dict[str, dict[str, float]], *names: str) -> None:
    for name in names:
        assert name in figures, sorted(figures)
        assert figures[name]["p50"] > 0, (name, figures[name])


def test_standalone_in_process_paced_and_first_publish() -> None:
    results = run_bench("--cases", "inprocess")
    assert results["settings"]["mode"] == "standalone"
    assert_durations(results["steady"]["this"], "inprocess.paced", "inprocess.b2b", "probe.paced")
    assert_durations(results["first"]["this"], "inprocess.first", "start_to_serving")


def test_kubernetes_mode_through_the_fake_api_a_plugin_and_openbao() -> None:
    results = run_bench("--kubernetes", "--cases", "inprocess,plugin,vault")
    assert results["settings"]["mode"] == "kubernetes"
    assert_durations(
        results["steady"]["this"],
        "inprocess.paced",
        "plugin.paced",
        "vault.paced",
        "inprocess.paced.spcps_after_reply",
    )
    first = results["first"]["this"]
    assert_durations(first, "plugin.first", "start_to_serving")
    assert first["inprocess.first.api_reads"]["p50"] == 0  # the informer's cache serves it


@pytest.mark.skipif(
    not go_kubelet.can_build(),
    reason="no Go client: apt-get install golang-go golang-google-grpc-dev",
)
def test_kubelets_own_client_beside_grpcio() -> None:
    """``--clients grpcio,go,kubelet``: grpc-go on one connection, and calling as kubelet (a
    connection per call, a capability call before each publish), interleaved with grpcio.
    ``kubelet_step`` (capability call + publish) is the kubelet pattern's alone."""
    results = run_bench("--cases", "inprocess,plugin", "--clients", "grpcio,go,kubelet")
    assert results["settings"]["clients"] == ["grpcio", "go", "kubelet"]
    steady = results["steady"]
    assert_durations(steady["this"], "inprocess.paced", "probe.paced")
    assert_durations(steady["this-go"], "inprocess.paced", "probe.paced")
    assert not [key for key in steady["this-go"] if key.endswith("kubelet_step")]
    kubelet = steady["this-kubelet"]
    assert_durations(
        kubelet, "inprocess.paced", "inprocess.paced.kubelet_step", "plugin.paced.kubelet_step"
    )
    assert kubelet["inprocess.paced.kubelet_step"]["p50"] > kubelet["inprocess.paced"]["p50"]
    assert_durations(results["first"]["this-kubelet"], "inprocess.first", "start_to_serving")
