"""Start-up failures are refused with a message naming the flag, and leave nothing running."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from agent.app import build_agent
from agent.errors import ConfigError
from tests.conftest import agent_settings


async def test_unusable_endpoint_names_the_flag_and_stops_the_rest(tmp_path: Path) -> None:
    settings = agent_settings(tmp_path, endpoint="unix:///proc/no-such-dir/csi.sock")
    agent = build_agent(settings)
    with pytest.raises(ConfigError, match="--endpoint: cannot listen on /proc/no-such-dir"):
        await agent.start()
    port = agent.web.bound_ports["metrics"]
    await agent.stop()  # what serve() does after a failed start
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(f"http://127.0.0.1:{port}/metrics")


async def test_a_regular_file_at_the_endpoint_is_never_removed(tmp_path: Path) -> None:
    settings = agent_settings(tmp_path)
    Path(settings.socket_path).parent.mkdir(parents=True)
    Path(settings.socket_path).write_text("not a socket")
    agent = build_agent(settings)
    with pytest.raises(ConfigError, match="exists and is not a socket"):
        await agent.start()
    await agent.stop()
    assert Path(settings.socket_path).read_text() == "not a socket"


async def test_a_second_agent_never_takes_over_a_live_socket(tmp_path: Path) -> None:
    settings = agent_settings(tmp_path)
    first = build_agent(settings)
    await first.start()
    try:
        second = build_agent(settings)
        with pytest.raises(ConfigError, match="another process is serving"):
            await second.start()
        await second.stop()
        assert await first.csi.serving()
    finally:
        await first.stop()


async def test_stop_never_unlinks_a_socket_another_instance_bound(tmp_path: Path) -> None:
    import asyncio
    import os

    settings = agent_settings(tmp_path)
    agent = build_agent(settings)
    await agent.start()
    os.unlink(settings.socket_path)  # a new instance replaced the socket (e.g. maxSurge)
    newcomer = await asyncio.start_unix_server(lambda r, w: w.close(), path=settings.socket_path)
    try:
        assert not await agent.csi.serving()  # it is not ours
        await agent.stop()
        assert os.path.exists(settings.socket_path)
    finally:
        newcomer.close()
        await newcomer.wait_closed()
