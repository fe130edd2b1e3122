"""The tests' grpcio fake plugin (``tests/support/plugin_server.py``) in a process of its own,
serving on its socket directly (no ``:authority`` relay), as a plugin DaemonSet pod would.

Usage: ``python -m bench.fake_plugin <socket>``; prints ``ready`` once serving, stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from tests.support.plugin_server import FakePlugin


async def serve(socket_path: str) -> None:
    plugin = FakePlugin(socket_path, relay=False)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await plugin.start()
    print("ready", flush=True)
    try:
        await stop.wait()
    finally:
        await plugin.stop()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1]))
