"""The kubelet benchmark still runs end to end (standalone and Kubernetes mode, a few samples),
so the figures in docs/benchmarks.md can be measured again. Nothing here is timed: a figure is
only required to exist and be a duration."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

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
    shutil.which("go") is None or not Path("/usr/share/gocode/src/google.golang.org/grpc").is_dir(),
    reason="kubelet-go needs golang-go and golang-google-grpc-dev",
)
def test_kubelets_own_client_one_connection_and_a_connection_per_call() -> None:
    """``kubelet_step`` (capability call + publish, each on a new connection) is the kubelet
    pattern's alone: the go client makes one call per publish."""
    results = run_bench("--clients", "go,kubelet", "--cases", "inprocess")
    assert results["settings"]["clients"] == ["go", "kubelet"]
    steady = results["steady"]
    assert_durations(steady["this-go"], "inprocess.paced", "probe.paced")
    assert_durations(steady["this-kubelet"], "inprocess.paced", "inprocess.paced.kubelet_step")
    assert not [key for key in steady["this-go"] if key.endswith("kubelet_step")]
