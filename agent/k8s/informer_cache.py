"""What an informer holds: the decoded objects by key, and the handler told of each change.

The list/watch loop (k8s/informer.py) feeds it whole lists (``replace``) and single watch
events (``upsert``, ``delete``); this module decides what the cache keeps and which
``InformerHandler`` callbacks follow. A value ``decode`` cannot produce never removes an
object: only a DELETED event or a list without the object does (for pods that means
releasing volumes, so a decoder bug must not). Handler and decoder failures are logged under
the informer's name, never propagated into the loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, Protocol, TypeVar

import structlog

from agent.k8s.api import Object

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)
Key = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped objects

log = structlog.get_logger(__name__)


class InformerHandler(Protocol[T_contra]):
    """Called on the event loop, in event order; exceptions are logged, never propagated."""

    def on_upsert(self, key: Key, old: T_contra | None, new: T_contra) -> None: ...

    def on_delete(self, key: Key, old: T_contra) -> None: ...

    def on_synced(self) -> None:
        """After every complete list: the cache now holds exactly what the server has."""
        ...


def object_key(document: Mapping[str, Any]) -> Key | None:
    metadata = document.get("metadata")
    if not isinstance(metadata, Mapping) or not isinstance(metadata.get("name"), str):
        return None
    namespace = metadata.get("namespace")
    return (namespace if isinstance(namespace, str) else "", metadata["name"])


class InformerCache(Generic[T]):
    """The ``decode``d values of one informer (``name`` labels its log lines), and the
    ``handler`` told of every change to them."""

    def __init__(
        self,
        name: str,
        decode: Callable[[Object], T | None],
        handler: InformerHandler[T] | None,
    ) -> None:
        self.name = name
        self._decode = decode
        self._handler = handler
        self._items: dict[Key, T] = {}

    @property
    def items(self) -> Mapping[Key, T]:
        return self._items

    def get(self, namespace: str, name: str) -> T | None:
        return self._items.get((namespace, name))

    def decode_into(self, target: dict[Key, T], document: object) -> None:
        """Add a listed ``document`` to ``target`` (a list being gathered); when it cannot be
        decoded, the value this cache holds for it, if any."""
        if not isinstance(document, dict):
            return
        key = object_key(document)
        if key is None:
            return
        value = self._safe_decode(document)
        if value is None:
            value = self._items.get(key)  # still there: keep what it was
        if value is not None:
            target[key] = value

    def replace(self, fresh: dict[Key, T]) -> None:
        """Hold exactly ``fresh`` (a complete list), telling the handler what it changed."""
        old, self._items = self._items, fresh
        for key, value in old.items():
            if key not in fresh:
                self.notify("on_delete", key, value)
        for key, value in fresh.items():
            previous = old.get(key)
            if previous != value:
                self.notify("on_upsert", key, previous, value)

    def upsert(self, document: Object) -> None:
        """An ADDED or MODIFIED watch event's object."""
        key = object_key(document)
        if key is None:
            return
        value = self._safe_decode(document)
        if value is None:
            return  # only a deletion or a list may drop an object: keep what it was
        previous = self._items.get(key)
        self._items[key] = value
        if previous != value:
            self.notify("on_upsert", key, previous, value)

    def delete(self, document: Object) -> None:
        """A DELETED watch event's object."""
        key = object_key(document)
        if key is None:
            return
        previous = self._items.pop(key, None)
        if previous is None:
            previous = self._safe_decode(document)
        if previous is not None:
            self.notify("on_delete", key, previous)

    def _safe_decode(self, document: Object) -> T | None:
        try:
            return self._decode(document)
        except Exception as err:
            log.warning(
                "informer.undecodable", informer=self.name, key=object_key(document), error=err
            )
            return None

    def notify(self, method: str, *args: object) -> None:
        """Call the handler's ``method``; a failure is logged, never raised."""
        if self._handler is None:
            return
        try:
            getattr(self._handler, method)(*args)
        except Exception as err:
            log.error(
                "informer.handler_failed",
                informer=self.name,
                callback=method,
                error_type=type(err).__name__,
                error=err,
            )
