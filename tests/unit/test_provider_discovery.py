"""Plugin socket discovery and the registry's fallback to it (upstream §4.1)."""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog.testing

from agent.errors import InvalidSecretProviderClass, ProviderNotFound
from agent.providers.discovery import find_plugin_socket
from agent.providers.plugin import PluginProvider
from agent.providers.registry import ProviderRegistry
from tests.support.fake_provider import FakeProvider


def make_dirs(tmp_path: Path, *names: str) -> list[str]:
    dirs = []
    for name in names:
        (tmp_path / name).mkdir()
        dirs.append(str(tmp_path / name))
    return dirs


@pytest.mark.parametrize("name", ["azure", "gcp", "aws", "e2e-provider", "conjur_v2", "a" * 30])
def test_valid_names_are_looked_up(tmp_path: Path, name: str) -> None:
    (directory,) = make_dirs(tmp_path, "d")
    assert find_plugin_socket(name, [directory]) is None
    (tmp_path / "d" / f"{name}.sock").touch()
    assert find_plugin_socket(name, [directory]) == f"{directory}/{name}.sock"


@pytest.mark.parametrize("name", ["a" * 31, "../etc", "a/b", "azure.v2", "a b", "azure\n", "é"])
def test_invalid_names_are_refused_before_touching_the_filesystem(name: str) -> None:
    with pytest.raises(InvalidSecretProviderClass, match="invalid provider") as info:
        find_plugin_socket(name, ["/nonexistent"])
    assert "^[a-zA-Z0-9_-]{0,30}$" in info.value.message


def test_long_invalid_names_are_shortened_in_the_message() -> None:
    with pytest.raises(InvalidSecretProviderClass) as info:
        find_plugin_socket("x." * 500, [])
    assert len(info.value.message) < 200


def test_directories_are_tried_in_order(tmp_path: Path) -> None:
    additional, provider_volume = make_dirs(tmp_path, "additional", "volume")
    (tmp_path / "volume" / "azure.sock").touch()
    assert find_plugin_socket("azure", [additional, provider_volume]) == (
        f"{provider_volume}/azure.sock"
    )
    (tmp_path / "additional" / "azure.sock").touch()
    assert find_plugin_socket("azure", [additional, provider_volume]) == (
        f"{additional}/azure.sock"
    )


def test_missing_directories_are_skipped(tmp_path: Path) -> None:
    (directory,) = make_dirs(tmp_path, "d")
    (tmp_path / "d" / "gcp.sock").touch()
    assert find_plugin_socket("gcp", [str(tmp_path / "absent"), directory]) is not None
    assert find_plugin_socket("gcp", []) is None


def registry(directories: list[str]) -> ProviderRegistry:
    fake = FakeProvider()
    return ProviderRegistry(
        timeout=5.0,
        version_key=b"k" * 32,
        factories={"fake": lambda _ctx: fake},
        load_entry_points=False,
        plugin_directories=directories,
        max_recv_bytes=1234,
    )


def test_registry_prefers_in_process_providers(tmp_path: Path) -> None:
    (directory,) = make_dirs(tmp_path, "d")
    (tmp_path / "d" / "fake.sock").touch()
    assert isinstance(registry([directory]).get("fake"), FakeProvider)


async def test_registry_finds_a_socket_that_appears_later(tmp_path: Path) -> None:
    first, second = make_dirs(tmp_path, "a", "b")
    providers = registry([first, second])
    with pytest.raises(ProviderNotFound) as info:
        providers.get("azure")
    assert info.value.message == (
        "provider not found: provider 'azure' (available: fake) "
        f"and no socket azure.sock in {first}, {second}"
    )
    (tmp_path / "b" / "azure.sock").touch()  # the plugin DaemonSet started
    plugin = providers.get("azure")
    assert isinstance(plugin, PluginProvider)
    assert plugin.name == "azure"
    assert plugin.socket_path == f"{second}/azure.sock"
    assert providers.get("azure") is plugin  # one client per plugin, reused
    assert list(providers.names()) == ["fake"]
    await providers.close()


def test_registry_without_plugin_directories_keeps_its_message() -> None:
    with pytest.raises(ProviderNotFound) as info:
        registry([]).get("azure")
    assert info.value.message == "provider not found: provider 'azure' (available: fake)"


def test_registry_reports_an_invalid_plugin_name(tmp_path: Path) -> None:
    with pytest.raises(InvalidSecretProviderClass, match="invalid provider"):
        registry(make_dirs(tmp_path, "d")).get("../azure")


def test_preferring_a_name_without_a_built_in_is_warned_about() -> None:
    with structlog.testing.capture_logs() as logs:
        ProviderRegistry(
            timeout=5, version_key=b"k", load_entry_points=False, prefer_plugins=("aws", "AWS")
        )
    warned = [e for e in logs if e["event"] == "provider.prefer_unknown"]
    assert [e["provider"] for e in warned] == ["AWS"]  # names are case-sensitive
    assert "aws" in warned[0]["built_in"]
