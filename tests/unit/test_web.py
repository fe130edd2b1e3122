"""WebServer: real aiohttp sites on loopback, driven by a real client."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from agent.config import parse_listen_address
from agent.errors import ConfigError
from agent.metrics import Metrics
from agent.web import WebServer


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (":8095", ("", 8095)),
        ("0.0.0.0:8095", ("0.0.0.0", 8095)),  # noqa: S104
        ("localhost:9808", ("localhost", 9808)),
        ("[::1]:8095", ("::1", 8095)),
        ("[::]:0", ("::", 0)),
    ],
)
def test_parse_listen_address(value: str, expected: tuple[str, int]) -> None:
    assert parse_listen_address(value) == expected


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("8095", "no port"),
        ("host:", "invalid port"),
        ("host:http", "invalid port"),
        (":70000", "invalid port"),
        (":-1", "invalid port"),
        ("::1:8095", "brackets"),
        ("[]:8095", "empty brackets"),
    ],
)
def test_parse_listen_address_errors(value: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_listen_address(value)


def check(result: bool) -> Callable[[], Awaitable[bool]]:
    async def run() -> bool:
        return result

    return run


async def hangs() -> bool:
    await asyncio.Event().wait()
    return True


async def raises() -> bool:
    raise RuntimeError("token=hvs.secret-in-message")


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def get(client: aiohttp.ClientSession, port: int, path: str) -> tuple[int, str, str]:
    async with client.get(f"http://127.0.0.1:{port}{path}") as response:
        return response.status, await response.text(), response.headers["Content-Type"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_shared_site_serves_metrics_and_health(client: aiohttp.ClientSession) -> None:
    metrics = Metrics(os_type="linux")
    metrics.publish_succeeded("vault", 0.01)
    server = WebServer(
        metrics_addr="127.0.0.1:0",
        health_addr="127.0.0.1:0",
        metrics=metrics,
        health_checks={"csi": check(True)},
        ready_checks={"providers": check(True)},
    )
    await server.start()
    try:
        port = server.bound_ports["metrics"]
        assert server.bound_ports == {"metrics": port, "health": port}
        status, body, content_type = await get(client, port, "/metrics")
        assert status == 200
        assert content_type == "text/plain; version=0.0.4; charset=utf-8"
        assert 'node_publish_total{os_type="linux",provider="vault"} 1.0' in body
        assert await get(client, port, "/healthz") == (200, "ok\n", "text/plain; charset=utf-8")
        assert (await get(client, port, "/readyz"))[:2] == (200, "ok\n")
    finally:
        await server.stop()


async def test_failing_checks_return_503_naming_them(client: aiohttp.ClientSession) -> None:
    server = WebServer(
        metrics_addr="",
        health_addr="127.0.0.1:0",
        metrics=Metrics(),
        health_checks={"csi": check(True), "loop": check(False), "slow": hangs, "boom": raises},
        ready_checks={"providers": check(False)},
        check_timeout=0.05,
    )
    await server.start()
    try:
        port = server.bound_ports["health"]
        status, body, _ = await get(client, port, "/healthz")
        assert status == 503
        assert body.splitlines() == [
            "[-]boom failed: error RuntimeError",
            "[+]csi ok",
            "[-]loop failed: not ok",
            "[-]slow failed: timed out after 0.05s",
            "healthz check failed",
        ]
        assert "hvs." not in body
        status, body, _ = await get(client, port, "/readyz")
        assert (status, body) == (503, "[-]providers failed: not ok\nreadyz check failed\n")
        assert (await get(client, port, "/metrics"))[0] == 404  # metrics disabled
    finally:
        await server.stop()


async def test_separate_sites_and_stop_closes_them(client: aiohttp.ClientSession) -> None:
    server = WebServer(
        metrics_addr=f"127.0.0.1:{free_port()}", health_addr="127.0.0.1:0", metrics=Metrics()
    )
    await server.start()
    ports = server.bound_ports
    assert ports["metrics"] != ports["health"]
    assert (await get(client, ports["metrics"], "/metrics"))[0] == 200
    assert (await get(client, ports["metrics"], "/healthz"))[0] == 404
    assert (await get(client, ports["health"], "/healthz"))[:2] == (200, "ok\n")

    await server.stop()
    await server.stop()  # idempotent

    assert server.bound_ports == {}
    for port in ports.values():
        with pytest.raises(aiohttp.ClientConnectionError):
            await get(client, port, "/metrics")


async def test_bind_failure_is_a_config_error_and_cleans_up() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = WebServer(
            metrics_addr="127.0.0.1:0", health_addr=f"127.0.0.1:{port}", metrics=Metrics()
        )
        with pytest.raises(ConfigError, match="cannot listen for health"):
            await server.start()
    assert server.bound_ports == {}


def test_bad_address_fails_at_construction() -> None:
    with pytest.raises(ConfigError, match="no port"):
        WebServer(metrics_addr="8095", health_addr="", metrics=Metrics())


async def test_everything_disabled_starts_nothing() -> None:
    server = WebServer(metrics_addr="", health_addr="", metrics=Metrics())
    await server.start()
    assert server.bound_ports == {}
    await server.stop()


async def problem_with_token() -> str:
    return "watch failing: 401 for Bearer eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl\nretrying"


@pytest.fixture
async def health_port() -> AsyncIterator[int]:
    server = WebServer(
        metrics_addr="",
        health_addr="127.0.0.1:0",
        metrics=Metrics(),
        health_checks={"event-loop": check(True), "csi-socket": check(True)},
        ready_checks={
            "csi-socket": check(True),
            "kubernetes-pods": problem_with_token,
            "kubernetes-secretproviderclasses": check(True),
        },
    )
    await server.start()
    try:
        yield server.bound_ports["health"]
    finally:
        await server.stop()


async def test_verbose_lists_every_passing_check(
    client: aiohttp.ClientSession, health_port: int
) -> None:
    assert (await get(client, health_port, "/healthz"))[:2] == (200, "ok\n")
    status, body, _ = await get(client, health_port, "/healthz?verbose")
    assert (status, body.splitlines()) == (
        200,
        ["[+]csi-socket ok", "[+]event-loop ok", "healthz check passed"],
    )
    assert (await get(client, health_port, "/healthz?verbose=1"))[1] == body


async def test_failing_reason_is_one_line_and_scrubbed(
    client: aiohttp.ClientSession, health_port: int
) -> None:
    for path in ("/readyz", "/readyz?verbose"):
        status, body, _ = await get(client, health_port, path)
        assert status == 503
        assert body.splitlines() == [
            "[+]csi-socket ok",
            "[-]kubernetes-pods failed: watch failing: 401 for Bearer [REDACTED] retrying",
            "[+]kubernetes-secretproviderclasses ok",
            "readyz check failed",
        ]
        assert "eyJ" not in body


async def test_exclude_leaves_a_check_out(client: aiohttp.ClientSession, health_port: int) -> None:
    assert (await get(client, health_port, "/readyz?exclude=kubernetes-pods"))[:2] == (200, "ok\n")
    status, body, _ = await get(
        client, health_port, "/readyz?verbose&exclude=kubernetes-pods&exclude=nope"
    )
    assert (status, body.splitlines()) == (
        200,
        [
            "[+]csi-socket ok",
            "[+]kubernetes-pods excluded: ok",
            "[+]kubernetes-secretproviderclasses ok",
            'warn: some readyz checks cannot be excluded: no matches for "nope"',
            "readyz check passed",
        ],
    )


async def test_one_check_by_path(client: aiohttp.ClientSession, health_port: int) -> None:
    assert (await get(client, health_port, "/readyz/csi-socket"))[:2] == (200, "ok\n")
    assert (await get(client, health_port, "/healthz/event-loop"))[:2] == (200, "ok\n")
    status, body, _ = await get(client, health_port, "/readyz/kubernetes-pods")
    assert status == 503
    assert body == "[-]kubernetes-pods failed: watch failing: 401 for Bearer [REDACTED] retrying\n"
    status, body, _ = await get(client, health_port, "/readyz/event-loop")
    assert status == 404
    assert "csi-socket, kubernetes-pods, kubernetes-secretproviderclasses" in body
