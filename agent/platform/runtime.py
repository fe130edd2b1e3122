"""Which event loop runs the agent, and how a stop signal reaches it.

``--event-loop``: ``uvloop`` (Linux default: faster, smaller per-call overhead) or ``asyncio``,
the standard library's loop. uvloop does not exist on Windows, so there it is always
``asyncio``, and specifically the *selector* loop: the AF_UNIX shim needs ``select()``
readiness on a plain winsock socket (``agent.platform.afunix``); the default proactor loop
would drive it through overlapped I/O instead.

Stop signals: ``loop.add_signal_handler`` exists only on Unix loops. Elsewhere the handlers
are plain ``signal.signal`` handlers, and a socket pair given to ``signal.set_wakeup_fd``
wakes a loop sleeping in ``select()`` the moment one arrives (a Python-level handler alone
would run only when the loop next woke for something else).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import Callable, Coroutine
from typing import Any

EVENT_LOOPS = ("uvloop", "asyncio")
DEFAULT_EVENT_LOOP = "asyncio" if sys.platform == "win32" else "uvloop"


def stop_signals() -> tuple[signal.Signals, ...]:
    """SIGTERM and SIGINT; on Windows also SIGBREAK (Ctrl+Break, and a console's close)."""
    extra = getattr(signal, "SIGBREAK", None)
    return (signal.SIGTERM, signal.SIGINT) + ((extra,) if extra is not None else ())


def run(main: Coroutine[Any, Any, None], event_loop: str) -> None:
    """Run ``main`` to completion on the chosen loop (``EVENT_LOOPS``)."""
    if event_loop == "uvloop":
        import uvloop

        uvloop.run(main)
    elif sys.platform == "win32":
        with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
            runner.run(main)
    else:
        asyncio.run(main)


class StopSignals:
    """Calls ``stop`` on SIGTERM/SIGINT (and SIGBREAK) until ``close``; restores what was there.

    ``native=False`` forces the portable path (what Windows always takes) so it is testable
    on Linux.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, stop: Callable[[], None], *, native: bool = True
    ) -> None:
        self._loop = loop
        self._stop = stop
        self._installed: list[tuple[signal.Signals, Any]] = []
        self._native: list[signal.Signals] = []
        self._wakeup: tuple[socket.socket, socket.socket, int] | None = None
        if native and self._try_native():
            return
        self._install_portable()

    def _try_native(self) -> bool:
        try:
            for signum in stop_signals():
                self._loop.add_signal_handler(signum, self._stop)
                self._native.append(signum)
        except NotImplementedError:
            return False  # Windows loops
        return True

    def _install_portable(self) -> None:
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        self._loop.add_reader(reader.fileno(), _drain, reader)
        previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        self._wakeup = (reader, writer, previous_fd)
        for signum in stop_signals():
            previous = signal.signal(signum, self._on_signal)
            self._installed.append((signum, previous))

    def _on_signal(self, signum: int, frame: object) -> None:
        # Runs in the main thread between bytecodes: hand over to the loop, do nothing here.
        self._loop.call_soon_threadsafe(self._stop)

    def close(self) -> None:
        for signum in self._native:
            self._loop.remove_signal_handler(signum)
        self._native.clear()
        for signum, previous in self._installed:
            signal.signal(signum, previous)
        self._installed.clear()
        if self._wakeup is not None:
            reader, writer, previous_fd = self._wakeup
            signal.set_wakeup_fd(previous_fd)
            with contextlib.suppress(Exception):
                self._loop.remove_reader(reader.fileno())
            reader.close()
            writer.close()
            self._wakeup = None


def _drain(reader: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while reader.recv(512):
            pass
