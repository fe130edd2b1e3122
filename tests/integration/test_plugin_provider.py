"""PluginProvider against a grpcio plugin on a real unix socket, then the whole agent with it."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import shutil
import socket
import stat
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from structlog.testing import capture_logs

from agent._proto import v1alpha1 as pb
from agent.app import build_agent
from agent.errors import ProviderError, ProviderTimeout, ProviderUnavailable
from agent.logs import configure_logging
from agent.model import ObjectVersion, PodIdentity, ProviderRequest
from agent.providers import plugin as plugin_module
from agent.providers.common.gojson import string_map
from agent.providers.plugin import PluginProvider
from agent.providers.registry import ProviderRegistry
from tests.conftest import AgentHarness, agent_settings
from tests.support.clock import ManualClock
from tests.support.fake_provider import FakeProvider
from tests.support.kubelet import Kubelet, publish_request
from tests.support.mounts import is_root, mounts_under
from tests.support.plugin_server import FakePlugin

MiB = 1024 * 1024
OBJECTS = "array:\n  - |\n    objectName: foo\n    objectVersion: v1\n  - |\n    objectName: bar\n"


@pytest.fixture
def plugin_dir() -> Iterator[str]:
    # Short paths: a unix socket path must fit in 108 bytes, pytest's tmp_path may not.
    directory = tempfile.mkdtemp(prefix="plugins-", dir="/tmp")
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
async def plugin(plugin_dir: str) -> AsyncIterator[FakePlugin]:
    server = FakePlugin(os.path.join(plugin_dir, "e2e-provider.sock"))
    await server.start()
    yield server
    await server.stop()


def client_for(socket_path: str, **overrides: float) -> PluginProvider:
    options: dict[str, float] = {"max_recv_bytes": 4 * MiB, "timeout": 5.0, "backoff": 0.01}
    options.update(overrides)
    return PluginProvider(
        "e2e-provider",
        socket_path,
        max_recv_bytes=int(options["max_recv_bytes"]),
        timeout=options["timeout"],
        backoff=options["backoff"],
    )


@pytest.fixture
async def client(plugin: FakePlugin) -> AsyncIterator[PluginProvider]:
    provider = client_for(plugin.socket_path)
    yield provider
    await provider.close()


def request(secrets: dict[str, str] | None = None, **attributes: str) -> ProviderRequest:
    return ProviderRequest(
        attributes={"objects": OBJECTS, "secretProviderClass": "spc", **attributes},
        secrets=secrets or {},
        identity=PodIdentity("default", "web-0", "uid"),
        target_path="/var/lib/kubelet/pods/uid/volumes/kubernetes.io~csi/v/mount",
    )


async def test_mount_sends_what_upstream_sends(plugin: FakePlugin, client: PluginProvider) -> None:
    result = await client.mount(request({"password": "p<w>"}, note="a&b"))
    assert [(f.path, f.mode, f.contents) for f in result.files] == [
        ("foo", 0o644, b"foo:v1"),
        ("bar", 0o644, b"bar:v1"),
    ]
    assert result.versions == (ObjectVersion("secret/foo", "v1"), ObjectVersion("secret/bar", "v1"))
    (received,) = plugin.requests
    objects = json.dumps(OBJECTS)
    assert received.attributes == (
        f'{{"note":"a\\u0026b","objects":{objects},"secretProviderClass":"spc"}}'
    )
    assert received.secrets == r'{"password":"p\u003cw\u003e"}'
    assert received.permission == "420"
    assert received.target_path == "/var/lib/kubelet/pods/uid/volumes/kubernetes.io~csi/v/mount"
    assert plugin.authorities == ["localhost"]


async def test_no_node_publish_secret_is_sent_as_null(
    plugin: FakePlugin, client: PluginProvider
) -> None:
    await client.mount(request())
    assert plugin.requests[0].secrets == "null"


async def test_the_fake_plugin_rejects_another_authority_like_upstreams(
    plugin: FakePlugin,
) -> None:
    # grpclib's default for a unix socket is "127.0.0.1:50051": this is why the client fixes it.
    channel = Channel(path=plugin.socket_path)
    try:
        with pytest.raises(GRPCError) as info:
            await pb.CsiDriverProviderStub(channel).mount(pb.MountRequest(attributes="{}"))
        assert info.value.status is Status.INVALID_ARGUMENT
    finally:
        channel.close()
    assert plugin.authorities == ["127.0.0.1:50051"]


async def test_one_connection_serves_concurrent_mounts(
    plugin: FakePlugin, client: PluginProvider
) -> None:
    results = await asyncio.gather(*(client.mount(request()) for _ in range(20)))
    assert all(len(result.files) == 2 for result in results)
    assert plugin.authorities == ["localhost"] * 20


async def test_modes_are_taken_verbatim(plugin: FakePlugin, client: PluginProvider) -> None:
    plugin.modes = {"foo": 0o400, "bar": 0}
    result = await client.mount(request())
    assert [f.mode for f in result.files] == [0o400, 0]


async def test_bits_above_the_permissions_are_dropped_as_upstreams_writer_drops_them(
    plugin: FakePlugin, client: PluginProvider
) -> None:
    """Go's os.FileMode(0o4755) writes 0o755 (its setuid flag is bit 23); bit 23 itself, or a
    negative int32, would make upstream write setuid: never here."""
    plugin.modes = {"foo": 0o4755, "bar": (1 << 23) | 0o2640}
    with capture_logs() as logs:
        result = await client.mount(request())
    assert [(f.path, f.mode) for f in result.files] == [("foo", 0o755), ("bar", 0o640)]
    dropped = [
        (e["path"], e["mode"], e["written"])
        for e in logs
        if e["event"] == "plugin.mode_bits_dropped"
    ]
    assert dropped == [("foo", "0o4755", "0o755"), ("bar", "0o40002640", "0o640")]
    plugin.modes = {"foo": -1}
    assert (await client.mount(request())).files[0].mode == 0o777


async def test_provider_error_code_becomes_the_reason(
    plugin: FakePlugin, client: PluginProvider
) -> None:
    plugin.error_code = "AuthenticationFailed"
    with pytest.raises(ProviderError) as info:
        await client.mount(request())
    assert info.value.reason == "AuthenticationFailed"
    assert "mount request failed with provider error code AuthenticationFailed" in str(info.value)
    assert len(plugin.requests) == 1  # a provider error is an answer, not retried


async def test_a_provider_error_code_is_bounded_in_length_charset_and_variety(
    plugin: FakePlugin, client: PluginProvider
) -> None:
    """error.code labels the node_publish_error metric: a plugin may not put anything there."""
    plugin.error_code = 'Bad code\n{"x"}' + "y" * 200
    with pytest.raises(ProviderError) as info:
        await client.mount(request())
    bounded = "Bad_code___x__" + "y" * 50
    assert info.value.reason == bounded and len(bounded) == 64
    assert info.value.message.endswith(f"provider error code {bounded}")
    for i in range(40):
        plugin.error_code = f"Code{i}"
        with pytest.raises(ProviderError) as info:
            await client.mount(request())
        expected = f"Code{i}" if i < 31 else "GRPCProviderError"  # 32 distinct in all
        assert info.value.reason == expected
        assert info.value.message.endswith(f"provider error code Code{i}")
    plugin.error_code = "Code3"  # one seen before keeps its label
    with pytest.raises(ProviderError) as info:
        await client.mount(request())
    assert info.value.reason == "Code3"


async def test_missing_object_versions_fail(plugin: FakePlugin, client: PluginProvider) -> None:
    plugin.omit_versions = True
    with pytest.raises(ProviderError, match="missing object versions") as info:
        await client.mount(request())
    assert info.value.reason == "GRPCProviderError"


async def test_legacy_plugin_without_files_keeps_its_versions(
    plugin: FakePlugin, client: PluginProvider
) -> None:
    plugin.omit_files = True
    result = await client.mount(request())
    assert result.files == ()
    assert [v.id for v in result.versions] == ["secret/foo", "secret/bar"]


async def test_unavailable_is_retried(plugin: FakePlugin, client: PluginProvider) -> None:
    plugin.unavailable_calls = 2
    result = await client.mount(request())
    assert len(result.files) == 2
    assert len(plugin.requests) == 3


async def test_unavailable_three_times_fails(plugin: FakePlugin, client: PluginProvider) -> None:
    plugin.unavailable_calls = 5
    with pytest.raises(ProviderUnavailable) as info:
        await client.mount(request({"password": "hunter2"}))
    assert len(plugin.requests) == 3  # upstream's MaxAttempts
    message = str(info.value)
    assert "'e2e-provider'" in message
    assert "code = UNAVAILABLE" in message
    assert "plugin warming up" in message
    assert "hunter2" not in message


async def test_a_slow_plugin_times_out(plugin: FakePlugin) -> None:
    plugin.delay = 5.0
    provider = client_for(plugin.socket_path, timeout=0.3)
    try:
        with pytest.raises(ProviderTimeout, match=r"did not answer Mount within 0\.3s"):
            await provider.mount(request())
    finally:
        await provider.close()


async def test_waits_for_a_socket_that_appears_late(plugin_dir: str) -> None:
    server = FakePlugin(os.path.join(plugin_dir, "e2e-provider.sock"))
    provider = client_for(server.socket_path, timeout=5.0, backoff=0.05)
    mounting = asyncio.create_task(provider.mount(request()))
    await asyncio.sleep(0.3)
    assert not mounting.done()
    await server.start()
    try:
        result = await asyncio.wait_for(mounting, 5)
        assert len(result.files) == 2
    finally:
        await provider.close()
        await server.stop()


async def test_no_plugin_until_the_deadline_names_the_socket(plugin_dir: str) -> None:
    path = os.path.join(plugin_dir, "e2e-provider.sock")
    provider = client_for(path, timeout=0.3)
    with pytest.raises(ProviderUnavailable, match=f"not reachable at {path}"):
        await provider.mount(request())
    await provider.close()


@pytest.mark.parametrize("kind", ["a regular file", "a directory"])
async def test_a_path_that_is_not_a_socket_says_so(plugin_dir: str, kind: str) -> None:
    # A stale file left where the plugin listens: upstream only stats the path, then connects.
    path = os.path.join(plugin_dir, "e2e-provider.sock")
    if kind == "a directory":
        os.mkdir(path)
    else:
        Path(path).touch()
    provider = client_for(path, timeout=0.3)
    with pytest.raises(ProviderUnavailable) as info:
        await provider.mount(request())
    await provider.close()
    assert info.value.message == (
        f"provider 'e2e-provider' is not reachable at {path}: it is {kind}, not a socket "
        "(Connection refused)"
    )


async def test_reconnects_after_the_plugin_restarts(
    plugin: FakePlugin, client: PluginProvider
) -> None:
    await client.mount(request())
    await plugin.stop()
    await plugin.start()
    result = await client.mount(request())
    assert len(result.files) == 2


async def test_a_reply_over_the_limit_names_the_flag(plugin: FakePlugin) -> None:
    plugin.padding = 200 * 1024
    provider = client_for(plugin.socket_path, max_recv_bytes=64 * 1024)
    try:
        with pytest.raises(ProviderError) as info:
            await provider.mount(request())
        assert not isinstance(info.value, ProviderUnavailable)
        assert "received message larger than max" in str(info.value)
        assert "--max-call-recv-msg-size" in str(info.value)
        assert "--max-call-recv-msg-size" in str(info.value)
        assert len(plugin.requests) == 1
        plugin.padding = 0  # the connection is still usable
        assert len((await provider.mount(request())).files) == 2
    finally:
        await provider.close()


async def test_a_large_reply_is_logged_without_content(
    plugin: FakePlugin, client: PluginProvider
) -> None:
    plugin.padding = 2 * MiB
    with capture_logs() as logs:
        result = await client.mount(request())
    assert len(result.files) == 3
    (entry,) = [e for e in logs if e["event"] == "plugin.large_response"]
    assert entry["provider"] == "e2e-provider"
    assert entry["bytes"] > 2 * MiB
    assert "xxxx" not in repr(entry)


async def test_version(plugin: FakePlugin, client: PluginProvider) -> None:
    assert await client.version() == ("v1alpha1", "E2EMockProvider", "v0.0.10")


async def test_health_check_logs_each_known_plugin(
    plugin: FakePlugin, plugin_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plugin_module, "VERSION_TIMEOUT", 0.3)
    registry = ProviderRegistry(
        timeout=5.0, version_key=b"k" * 32, load_entry_points=False, plugin_directories=[plugin_dir]
    )
    try:
        with capture_logs() as logs:
            await registry.health_check()  # nothing known yet: nothing to ask
            registry.get("e2e-provider")
            await registry.health_check()
            await plugin.stop()
            await registry.health_check()
    finally:
        await registry.close()
    health = [e for e in logs if e["event"] == "plugin.health"]
    assert [(e["provider"], e["healthy"]) for e in health] == [
        ("e2e-provider", True),
        ("e2e-provider", False),
    ]
    assert health[0]["runtime"] == "E2EMockProvider"
    assert "not reachable" in health[1]["error"]
    assert plugin.version_calls == 1


async def test_grpcio_status_codes_other_than_unavailable_are_not_retried(
    plugin: FakePlugin, client: PluginProvider
) -> None:
    # The plugin answers INVALID_ARGUMENT to a wrong authority; simulate that for our client.
    plugin.authorities.append("elsewhere")
    with pytest.raises(ProviderError) as info:
        await client.mount(request())
    assert "code = INVALID_ARGUMENT" in str(info.value)
    assert len(plugin.requests) == 1


# ---- The whole agent: kubelet → CSI socket → plugin socket → tmpfs ----


@contextlib.asynccontextmanager
async def agent_with_plugins(
    agent_root: Path,
    plugin_dir: str,
    overrides: dict[str, object],
    clock: ManualClock | None = None,
) -> AsyncIterator[AgentHarness]:
    """The real composition (plugin directories from the flags) serving ``app-secrets``, a
    class of the ``e2e-provider`` plugin; unpublishes everything and stops afterwards."""
    extra = os.path.join(plugin_dir, "extra")
    os.mkdir(extra)
    settings = agent_settings(
        agent_root,
        provider_volume=plugin_dir,
        additional_provider_volume_paths=(extra,),
        provider_health_check=True,
        provider_health_check_interval=1.0,
        **overrides,
    )
    agent = build_agent(settings, clock=clock)
    await agent.start()
    kubelet = Kubelet(settings.socket_path)
    harness = AgentHarness(agent, settings, FakeProvider(), kubelet, agent_root)
    harness.write_spc(provider="e2e-provider", parameters={"objects": OBJECTS})
    try:
        yield harness
    finally:
        for record in list(agent.table):
            await kubelet.unpublish(record.volume_id, record.target_path)
        await kubelet.close()
        await agent.stop()


@pytest.fixture
async def plugin_agent(
    agent_root: Path, plugin_dir: str, settings_overrides: dict[str, object]
) -> AsyncIterator[AgentHarness]:
    async with agent_with_plugins(agent_root, plugin_dir, settings_overrides) as harness:
        yield harness


async def expect_failure(call: object, code: grpc.StatusCode) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    assert info.value.code() == code, info.value.details()
    return info.value.details() or ""


def mode_of(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


async def test_publish_and_unpublish_through_a_plugin(
    plugin_agent: AgentHarness, plugin: FakePlugin
) -> None:
    plugin.modes = {"bar": 0o400}
    target = plugin_agent.target()
    await plugin_agent.kubelet.publish(
        publish_request(target, tokens={"aud": "jwt"}, secrets={"client-secret": "s&t"})
    )
    assert Path(target, "foo").read_bytes() == b"foo:v1"
    assert Path(target, "bar").read_bytes() == b"bar:v1"
    assert mode_of(os.path.join(target, "foo")) == 0o644
    assert mode_of(os.path.join(target, "bar")) == 0o400
    if is_root():
        assert mounts_under(target) == [target]

    (received,) = plugin.requests
    attributes = json.loads(received.attributes)
    assert received.attributes == string_map(attributes)  # Go's exact text, not just JSON
    assert attributes["objects"] == OBJECTS
    assert attributes["secretProviderClass"] == "app-secrets"
    assert attributes["csi.storage.k8s.io/pod.name"] == "web-0"
    assert attributes["csi.storage.k8s.io/pod.namespace"] == "default"
    assert attributes["csi.storage.k8s.io/serviceAccount.name"] == "web"
    assert "jwt" in attributes["csi.storage.k8s.io/serviceAccount.tokens"]
    assert received.secrets == r'{"client-secret":"s\u0026t"}'
    assert received.permission == "420"
    assert received.target_path == target
    assert plugin.authorities == ["localhost"]
    record = plugin_agent.agent.table.get(target)
    assert record is not None
    assert {v.id for v in record.versions} == {"secret/foo", "secret/bar"}

    await plugin_agent.kubelet.unpublish(record.volume_id, target)
    assert not os.path.exists(target)
    assert mounts_under(target) == []


async def test_tokens_kubelet_puts_in_the_secrets_reach_the_plugin_as_upstream_sends_them(
    plugin_agent: AgentHarness, plugin: FakePlugin
) -> None:
    """Kubelet >= 1.35 with the CSIDriver's serviceAccountTokenInSecrets sends the tokens in
    ``secrets``, not in the volume context (upstream §3.7). Upstream copies them into the
    attributes under the usual key and forwards ``secrets`` verbatim, tokens included."""
    tokens = json.dumps({"aud": {"token": "jwt", "expirationTimestamp": "2099-01-01T00:00:00Z"}})
    key = "csi.storage.k8s.io/serviceAccount.tokens"
    target = plugin_agent.target()
    await plugin_agent.kubelet.publish(
        publish_request(target, secrets={key: tokens, "clientid": "c"})
    )
    (received,) = plugin.requests
    assert json.loads(received.attributes)[key] == tokens
    assert json.loads(received.secrets) == {key: tokens, "clientid": "c"}


async def test_a_plugin_that_starts_after_the_agent_is_found(
    plugin_agent: AgentHarness, plugin_dir: str
) -> None:
    target = plugin_agent.target()
    details = await expect_failure(
        plugin_agent.kubelet.publish(publish_request(target)), grpc.StatusCode.FAILED_PRECONDITION
    )
    assert "provider not found: provider 'e2e-provider'" in details
    assert f"no socket e2e-provider.sock in {plugin_dir}/extra, {plugin_dir}" in details
    assert mounts_under(target) == []
    server = FakePlugin(os.path.join(plugin_dir, "e2e-provider.sock"))
    await server.start()
    try:
        await plugin_agent.kubelet.publish(publish_request(target))
        assert Path(target, "foo").read_bytes() == b"foo:v1"
        await plugin_agent.kubelet.unpublish("csi-0123456789abcdef", target)
    finally:
        await server.stop()


async def test_a_setuid_mode_from_a_plugin_mounts_without_the_setuid_bit(
    plugin_agent: AgentHarness, plugin: FakePlugin
) -> None:
    plugin.modes = {"foo": 0o4755}
    target = plugin_agent.target()
    await plugin_agent.kubelet.publish(publish_request(target))
    assert mode_of(os.path.join(target, "foo")) == 0o755


async def test_a_provider_error_code_reaches_kubelet_and_metrics(
    plugin_agent: AgentHarness, plugin: FakePlugin
) -> None:
    plugin.error_code = "KeyVaultNotFound"
    target = plugin_agent.target()
    details = await expect_failure(
        plugin_agent.kubelet.publish(publish_request(target)), grpc.StatusCode.FAILED_PRECONDITION
    )
    assert "mount request failed with provider error code KeyVaultNotFound" in details
    assert mounts_under(target) == []
    body = plugin_agent.agent.metrics.exposition()[0].decode()
    assert 'error_type="KeyVaultNotFound"' in body
    assert 'provider="e2e-provider"' in body


async def test_a_legacy_plugin_without_files_still_mounts(
    plugin_agent: AgentHarness, plugin: FakePlugin
) -> None:
    plugin.omit_files = True
    target = plugin_agent.target()
    await plugin_agent.kubelet.publish(publish_request(target))
    assert [name for name in os.listdir(target) if not name.startswith("..")] == []
    record = plugin_agent.agent.table.get(target)
    assert record is not None
    assert len(record.versions) == 2


async def test_the_health_check_asks_known_plugins(
    plugin_agent: AgentHarness, plugin: FakePlugin
) -> None:
    await plugin_agent.kubelet.publish(publish_request(plugin_agent.target()))
    async with asyncio.timeout(5):
        while plugin.version_calls == 0:
            await asyncio.sleep(0.05)


async def test_an_in_flight_call_to_a_vanished_socket_fails_fast(plugin: FakePlugin) -> None:
    # The DaemonSet pod died mid-call: its socket is gone. Waiting for it (upstream's
    # waitForReady) would hold kubelet until the deadline; the call fails as UNAVAILABLE instead,
    # and kubelet's retry finds the plugin again once it is back.
    plugin.delay = 30.0
    provider = client_for(plugin.socket_path, timeout=60.0)
    try:
        mounting = asyncio.create_task(provider.mount(request()))
        async with asyncio.timeout(10):
            while not plugin.requests:
                await asyncio.sleep(0.01)
        await plugin.stop()
        with pytest.raises(ProviderUnavailable) as info:
            await mounting
        assert not isinstance(info.value, ProviderTimeout)
        assert f"its socket {plugin.socket_path} is gone" in str(info.value)
        plugin.delay = 0.0
        await plugin.start()
        assert len((await provider.mount(request())).files) == 2
    finally:
        await provider.close()


async def test_the_agent_reconnects_to_a_restarted_plugin(
    plugin_agent: AgentHarness, plugin: FakePlugin
) -> None:
    first = plugin_agent.target("first")
    await plugin_agent.kubelet.publish(publish_request(first, volume_id="csi-first"))
    await plugin.stop()  # the DaemonSet pod is replaced: a new process, a new socket
    await plugin.start()
    second = plugin_agent.target("second")
    await plugin_agent.kubelet.publish(publish_request(second, volume_id="csi-second"))
    assert Path(second, "foo").read_bytes() == b"foo:v1"
    assert [r.target_path for r in plugin.requests] == [first, second]


def registry_preferring(plugin_dir: str, builtin: FakeProvider, prefer: bool) -> ProviderRegistry:
    return ProviderRegistry(
        timeout=5.0,
        version_key=b"k" * 32,
        factories={"e2e-provider": lambda _ctx: builtin},
        load_entry_points=False,
        plugin_directories=[plugin_dir],
        prefer_plugins=["e2e-provider"] if prefer else [],
    )


async def test_an_installed_plugin_can_be_preferred_to_the_builtin(
    plugin: FakePlugin, plugin_dir: str
) -> None:
    builtin = FakeProvider("e2e-provider", {"foo": b"from the built-in"})
    registry = registry_preferring(plugin_dir, builtin, prefer=True)
    try:
        first = registry.get("e2e-provider")
        result = await first.mount(request())
        assert files(result) == {"foo": b"foo:v1", "bar": b"bar:v1"}  # the plugin answered
        for cycle in range(3):
            await plugin.stop()  # the DaemonSet is removed: the built-in takes over
            assert files(await registry.get("e2e-provider").mount(request())) == {
                "foo": b"from the built-in"
            }
            await plugin.start()  # and back
            # ... through the same client: a plugin that comes and goes piles nothing up.
            assert registry.get("e2e-provider") is first
            assert len(files(await first.mount(request()))) == 2
            assert len(builtin.requests) == cycle + 1
    finally:
        await registry.close()


async def test_a_crashed_preferred_plugins_socket_file_is_served_by_the_builtin(
    plugin_dir: str,
) -> None:
    """A socket file nobody listens on (the plugin crashed) would make every mount wait for
    the plugin until the deadline; the built-in serves at once, and says so once."""
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(os.path.join(plugin_dir, "e2e-provider.sock"))
    stale.close()  # the file stays: connect() is refused
    builtin = FakeProvider("e2e-provider", {"foo": b"from the built-in"})
    registry = registry_preferring(plugin_dir, builtin, prefer=True)
    try:
        with capture_logs() as logs:
            for _ in range(2):
                async with asyncio.timeout(2):  # the plugin's deadline would be 4.75 s
                    result = await registry.get("e2e-provider").mount(request())
                assert files(result) == {"foo": b"from the built-in"}
        refused = [entry for entry in logs if entry["event"] == "plugin.refused"]
        assert len(refused) == 1
        assert refused[0]["using"] == "built-in"
        assert "Connection refused" in refused[0]["error"]
    finally:
        await registry.close()


async def test_without_the_preference_the_builtin_serves_beside_a_plugin(
    plugin: FakePlugin, plugin_dir: str
) -> None:
    builtin = FakeProvider("e2e-provider", {"foo": b"from the built-in"})
    registry = registry_preferring(plugin_dir, builtin, prefer=False)
    try:
        assert files(await registry.get("e2e-provider").mount(request())) == {
            "foo": b"from the built-in"
        }
        assert plugin.requests == []
    finally:
        await registry.close()


def files(result: object) -> dict[str, bytes]:
    return {f.path: f.contents for f in result.files}  # type: ignore[attr-defined]


# ---- Large secrets (upstream's remedy: --max-call-recv-msg-size) ----

LARGE = 20 * MiB
# Room for the 20 MiB file on the volume's tmpfs: only the file size limit is under test here.
ROOMY = {"tmpfs_size": 64 * MiB}


@pytest.mark.parametrize("settings_overrides", [{"max_call_recv_msg_size": 33554432, **ROOMY}])
async def test_a_20mib_file_mounts_once_the_receive_limit_is_raised(
    plugin_agent: AgentHarness, plugin: FakePlugin
) -> None:
    # The payload limit follows the receive limit: no second flag to find.
    assert plugin_agent.settings.payload_limit == 33554432
    plugin.padding = LARGE
    target = plugin_agent.target()
    await plugin_agent.kubelet.publish(publish_request(target))
    written = Path(target, "padding")
    assert written.stat().st_size == LARGE
    assert written.read_bytes() == b"x" * LARGE
    assert Path(target, "foo").read_bytes() == b"foo:v1"


async def large_publish_fails(
    harness: AgentHarness, plugin: FakePlugin, code: grpc.StatusCode
) -> str:
    plugin.padding = LARGE
    return await expect_failure(harness.kubelet.publish(publish_request(harness.target())), code)


@pytest.mark.parametrize("settings_overrides", [ROOMY])
async def test_a_20mib_reply_over_the_default_receive_limit_names_the_flag(
    plugin_agent: AgentHarness, plugin: FakePlugin
) -> None:
    message = await large_publish_fails(plugin_agent, plugin, grpc.StatusCode.FAILED_PRECONDITION)
    assert re.search(rf"received message larger than max \(2097\d{{4}} vs\. {4 * MiB}\)", message)
    assert message.count("--max-call-recv-msg-size") == 1
    assert not os.path.exists(os.path.join(plugin_agent.target(), "padding"))


@pytest.mark.parametrize(
    "settings_overrides",
    [{"max_call_recv_msg_size": 33554432, "max_payload_bytes": 8 * MiB, **ROOMY}],
)
async def test_an_explicit_payload_limit_still_applies_and_names_its_flag(
    plugin_agent: AgentHarness, plugin: FakePlugin
) -> None:
    message = await large_publish_fails(plugin_agent, plugin, grpc.StatusCode.INVALID_ARGUMENT)
    assert f"payload exceeds the limit of {8 * MiB} bytes" in message
    assert "--max-payload-size" in message


# ---- Quiet logs at high verbosity: -v is our trace, the HTTP/2 stack stays at INFO ----

HTTP2_LOGGERS = ("hpack", "h2", "grpclib")


def log_records(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def from_library(record: dict[str, object]) -> bool:
    return str(record.get("logger", "")).split(".")[0] in HTTP2_LOGGERS


@pytest.mark.parametrize("settings_overrides", [{"verbosity": 5}])
async def test_v5_logs_our_trace_but_not_the_http2_stack(
    plugin_agent: AgentHarness, plugin: FakePlugin
) -> None:
    stream = io.StringIO()
    configure_logging(json=True, verbosity=5, stream=stream)
    target = plugin_agent.target()
    await plugin_agent.kubelet.publish(publish_request(target, tokens={"aud": "jwt"}))
    await plugin_agent.kubelet.unpublish("csi-0123456789abcdef", target)
    records = log_records(stream)
    events = [r["event"] for r in records]
    assert "csi.request" in events  # our request trace is what -v turns on
    assert "node_publish.completed" in events
    assert [r for r in records if from_library(r)] == []


@pytest.mark.parametrize("settings_overrides", [{"verbosity": 0}])
async def test_debug_loggers_opens_a_library_on_its_own(
    plugin_agent: AgentHarness, plugin: FakePlugin
) -> None:
    stream = io.StringIO()
    configure_logging(json=True, verbosity=0, stream=stream, debug_loggers=("hpack",))
    target = plugin_agent.target()
    await plugin_agent.kubelet.publish(publish_request(target, tokens={"aud": "jwt"}))
    records = log_records(stream)
    library = [r for r in records if from_library(r)]
    assert library, "hpack's DEBUG output should be on when asked for by name"
    assert {str(r["logger"]).split(".")[0] for r in library} == {"hpack"}
    assert "csi.request" not in [r["event"] for r in records]  # -v=0: no trace of ours


async def test_rotation_through_a_plugin_sends_the_mounted_versions_and_swaps_new_content(
    agent_root: Path, plugin_dir: str, plugin: FakePlugin
) -> None:
    """Upstream §15 item 5: rotation works with gRPC plugins. The first publish sends no
    current versions (as upstream's NodePublish); a rotation sends the volume's recorded ones,
    as ≤v1.5's reconciler did from the pod status (providers such as AWS's skip unchanged
    objects with them), and the pod's tokens and node-publish secret; new content is swapped
    in and counted."""
    clock = ManualClock()
    rotating: dict[str, object] = {"enable_secret_rotation": True, "rotation_poll_interval": 60.0}
    async with agent_with_plugins(agent_root, plugin_dir, rotating, clock) as harness:
        target = harness.target()
        await harness.kubelet.publish(
            publish_request(target, tokens={"aud": "jwt"}, secrets={"clientid": "c"})
        )
        assert Path(target, "foo").read_bytes() == b"foo:v1"
        plugin.rotated = True  # upstream's e2e provider after GET /rotation?rotated=true

        clock.advance(60.0 * 1.1 + 1)  # past the interval and its jitter
        assert harness.agent.rotation is not None
        async with asyncio.timeout(10):
            await harness.agent.rotation.settle()

        first, second = plugin.requests
        assert first.current_versions == ()
        assert sorted(second.current_versions) == [("secret/bar", "v1"), ("secret/foo", "v1")]
        assert "jwt" in json.loads(second.attributes)["csi.storage.k8s.io/serviceAccount.tokens"]
        # kubelet's node-publish secret, kept from its last call: no Secret label needed (≤v1.5
        # read it itself, only when labelled secrets-store.csi.k8s.io/used=true).
        assert second.secrets == '{"clientid":"c"}'
        assert Path(target, "foo").read_bytes() == b"foo:rotated"
        record = harness.agent.table.get(target)
        assert record is not None and {v.version for v in record.versions} == {"v2"}
        body = harness.agent.metrics.exposition()[0].decode()
        assert (
            'rotation_reconcile_total{os_type="linux",provider="e2e-provider",rotated="true"} 1.0'
            in body
        )
