"""common.deadline: one deadline per mount, narrowed by portions, read by every attempt."""

from __future__ import annotations

import asyncio

import pytest

from agent.errors import ProviderUnavailable
from agent.providers.common.deadline import (
    attempt_timeout,
    budget,
    deadline,
    fits,
    portion,
    time_left,
)


async def test_without_a_deadline_nothing_is_capped() -> None:
    assert (time_left(), budget(), attempt_timeout(30.0, "x"), fits(1e9)) == (
        None,
        None,
        30.0,
        True,
    )
    with portion(0.5):
        assert time_left() is None


async def test_attempts_and_pauses_fit_in_the_time_left() -> None:
    with deadline(10.0):
        assert 9.0 < attempt_timeout(30.0, "Key Vault") <= 10.0
        assert attempt_timeout(2.0, "Key Vault") == 2.0
        assert fits(5.0) and not fits(10.0)
        assert budget() == 10.0


async def test_a_passed_deadline_names_the_service_and_the_budget() -> None:
    with deadline(0.0), pytest.raises(ProviderUnavailable) as info:
        attempt_timeout(30.0, "Secret Manager")
    assert info.value.message == "Secret Manager did not answer within 0s"


async def test_a_portion_narrows_and_an_inner_deadline_never_extends() -> None:
    with deadline(9.0):
        with portion(1 / 3):
            assert 2.5 < (time_left() or 0) <= 3.0
            with deadline(100.0):
                assert (time_left() or 0) <= 3.0  # the enclosing one ends sooner
        assert (time_left() or 0) > 8.0  # restored after the portion


async def test_tasks_started_inside_carry_it() -> None:
    async def seen() -> float | None:
        return budget()

    with deadline(4.0):
        task = asyncio.create_task(seen())
    assert await task == 4.0
