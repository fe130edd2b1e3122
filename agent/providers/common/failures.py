"""All-or-nothing mounts: which failure of a group of concurrent fetches to report."""

from __future__ import annotations

import structlog

from agent.errors import AgentError, ProviderError

log = structlog.get_logger(__name__)


def first_error(group: BaseExceptionGroup[BaseException], store: str) -> BaseException:
    """The first AgentError in the (nested) ``group``, in task order.

    Cancellation and other BaseExceptions propagate unchanged. An unexpected exception (a bug)
    becomes a ProviderError naming only its type and ``store`` ("Vault", "Key Vault"): neither
    its message nor a traceback with locals is shown, as either could hold a token.
    """
    leaves: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        current = stack.pop(0)
        if isinstance(current, BaseExceptionGroup):
            stack[:0] = list(current.exceptions)
        else:
            leaves.append(current)
    for leaf in leaves:
        if isinstance(leaf, AgentError):
            return leaf
    first = leaves[0] if leaves else group
    if not isinstance(first, Exception):
        return first
    log.error(
        "provider.read_failed",
        store=store,
        error=type(first).__qualname__,
        module=type(first).__module__,
    )
    return ProviderError(f"unexpected error reading from {store}: {type(first).__name__}")
