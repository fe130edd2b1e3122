"""Blocking file-system work in a worker thread, finished before a cancellation propagates.

``asyncio.to_thread`` lets a cancelled caller move on while its thread keeps running. For the
agent that is unsafe: an unpublish that follows a cancelled publish could unmount while a write
is still in flight, and the write would then land on the node's disk; a mount finishing after
the undo would leave a tmpfs nobody knows about. Waiting costs nothing on the normal path (the
shield wraps the executor future; no extra task).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


async def run_blocking(func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``func(*args, **kwargs)`` in the loop's default executor (the agent's file-system work)."""
    return await run_blocking_in(None, func, *args, **kwargs)


_loader: ThreadPoolExecutor | None = None


async def run_loading(func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``func`` in the agent's one library-loading thread: a provider's first-use imports and
    the data files its libraries read then (botocore's models). One at a time, in arrival order:
    under the GIL they would not run faster side by side, and one after the other each finishes
    sooner, the event loop gets more of the GIL meanwhile, and their allocations share one
    malloc arena (five providers loaded in parallel threads kept ~1.4 MiB more RSS)."""
    global _loader  # noqa: PLW0603 (one per process: imports are process-wide)
    if _loader is None:
        _loader = ThreadPoolExecutor(1, thread_name_prefix="loader")
    return await run_blocking_in(_loader, func, *args, **kwargs)


async def run_blocking_in(
    executor: Executor | None, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
) -> T:
    """:func:`run_blocking` in ``executor``: for work that waits on a remote service, whose
    threads must not be the ones the agent's file-system work (every volume's) queues for."""
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, func, *args, **kwargs)
    future = loop.run_in_executor(executor, call)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await finish_despite_cancellation(future)
        raise


async def finish_despite_cancellation(future: asyncio.Future[Any]) -> None:
    """Wait until ``future`` is done, even through further cancellations of this task.

    grpclib cancels a handler twice when kubelet's deadline passes (its own timer, then the
    client's RST_STREAM): one shielded wait is not enough. The caller re-raises the original
    CancelledError afterwards; the outcome of ``future`` is retrieved here and dropped.
    """
    while not future.done():
        try:
            await asyncio.wait({future})
        except asyncio.CancelledError:
            continue
    if not future.cancelled():
        future.exception()
