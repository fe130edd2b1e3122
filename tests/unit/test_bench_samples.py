"""Benchmark arguments: small ``--samples`` values still give statistics, not a crash."""

from __future__ import annotations

import argparse

import pytest

from bench.azure_bench import positive_int, rounds, stats


@pytest.mark.parametrize(
    ("samples", "expected"), [(1, [1]), (5, [5]), (10, [10]), (25, [10, 10, 5]), (200, [10] * 20)]
)
def test_rounds_add_up_to_the_samples_asked_for(samples: int, expected: list[int]) -> None:
    assert rounds(samples) == expected


def test_fewer_than_ten_samples_give_a_median() -> None:
    timings = [float(i) for size in rounds(3) for i in range(size)]
    assert stats(timings) == {"p50": 1.0, "p99": 2.0}


@pytest.mark.parametrize("text", ["0", "-3"])
def test_samples_below_one_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="at least 1"):
        positive_int(text)
