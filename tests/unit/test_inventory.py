"""``secrets-store-agent providers``: every in-process provider is loaded and reported."""

from __future__ import annotations

import pytest

from agent import cli
from agent.inventory import describe, load_providers
from agent.providers.factories import BUILTIN_FACTORIES
from agent.providers.registry import ProviderContext, ProviderRegistry
from tests.support.fake_provider import FakeProvider


def _missing_library(_context: ProviderContext) -> FakeProvider:
    import secrets_store_agent_no_such_sdk  # type: ignore[import-not-found]  # noqa: F401

    raise AssertionError("unreachable")


async def test_a_provider_whose_library_is_missing_is_named_and_the_rest_still_load() -> None:
    registry = ProviderRegistry(
        timeout=1.0,
        version_key=b"k" * 32,
        factories={"broken": _missing_library, "fake": lambda _ctx: FakeProvider()},
        load_entry_points=False,
    )

    loads = await load_providers(registry)

    assert [(load.name, bool(load.error)) for load in loads] == [("broken", True), ("fake", False)]
    broken, fake = describe(loads)
    assert broken.startswith("broken  error: ModuleNotFoundError")
    assert "secrets_store_agent_no_such_sdk" in broken
    assert fake.startswith("fake    ok  tests.support.fake_provider  ")


def test_cli_loads_every_builtin_provider(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["providers"]) == 0

    lines = capsys.readouterr().out.splitlines()
    status = {line.split()[0]: line.split()[1] for line in lines}
    assert {name: status.get(name) for name in BUILTIN_FACTORIES} == dict.fromkeys(
        BUILTIN_FACTORIES, "ok"
    )


def test_cli_exits_1_when_a_provider_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(BUILTIN_FACTORIES, "broken", _missing_library)

    assert cli.main(["providers"]) == 1
    lines = [line.split(maxsplit=1) for line in capsys.readouterr().out.splitlines()]
    (broken,) = [reason for name, reason in lines if name == "broken"]
    assert broken.startswith("error: ModuleNotFoundError")
