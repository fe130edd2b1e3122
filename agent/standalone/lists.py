"""A manifest file's lists read as the objects they hold, as ``kubectl apply -f`` flattens them.

kubectl's resource builder expands a list (``kind: List`` or a typed list such as
``SecretProviderClassList``, standalone/kinds.py) into its items and applies each as an object
of its own; an item that is itself a list is expanded in turn, at any depth. Here each item is
handed on as a document of its own, named by its index path after the list (``classes.yaml
items[3]``, ``classes.yaml items[3].items[0]`` for an item of a nested list), and a bad item is
reported alone: the others are still read.

Two bounds kubectl does not have, since this runs at every change of the directory:

- lists nest at most :data:`MAX_LIST_DEPTH` deep: a list deeper is reported, not read;
- one file's lists hold at most :data:`MAX_LIST_ITEMS` items in all, nested lists' items
  included: a file with more is refused whole (:class:`TooManyItems`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

from agent.providers.common.goyaml import GoYAMLError, Value
from agent.providers.common.goyaml_limits import MAX_VALUES
from agent.standalone.kinds import is_list_kind, item_type, names_a_type

# Generated manifests nest a list or two (a jsonnet List of Lists, a List of `kubectl get
# --raw` outputs); ten leaves room for more while an item's name (its index path) stays short.
MAX_LIST_DEPTH = 10
# As many as the values one document may hold (goyaml_limits.MAX_VALUES): every item is at least
# one value, and a file without aliases cannot hold more than MAX_EVENTS / 2 (a mapping's start
# and end). Aliases can repeat a nested list many times over; this bounds what one file expands
# to, before each item's name, document and problem add up.
MAX_LIST_ITEMS = MAX_VALUES

Report = Callable[[str, str], None]  # (where, why): an item or list reported and skipped


class TooManyItems(Exception):
    """The file's lists hold more than :data:`MAX_LIST_ITEMS` items; ``reason`` says so."""

    def __init__(self) -> None:
        self.reason = (
            f"its lists hold more than {MAX_LIST_ITEMS} items (nested lists included); not read"
        )
        super().__init__(self.reason)


@dataclasses.dataclass(frozen=True, slots=True)
class Item:
    """A document of the file, or an object one of its lists holds (named by its index path).
    ``typed`` is the ``(kind, apiVersion)`` it takes if it names neither (a typed list's item),
    else None: see :func:`typed_document`."""

    value: Value
    typed: tuple[str, str] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class _List:
    kind: str
    api_version: str
    items: Value | None


class Flattener:
    """Flattens the documents of one file; ``report`` gets each item or list skipped."""

    def __init__(self, report: Report) -> None:
        self._report = report
        self._counted = 0

    def flatten(self, document: Value) -> Iterator[Item]:
        """``document`` itself when it is no list the agent reads, else the objects its items
        hold, nested lists flattened in document order. Raises TooManyItems."""
        found = _as_list(document)
        if found is None:
            yield Item(document)
            return
        yield from self._items(document.where, found, f"{document.where} ", depth=1)

    def _items(self, where: str, found: _List, prefix: str, depth: int) -> Iterator[Item]:
        items = found.items
        if items is not None and _tag(items) not in ("!!seq", "!!null"):
            self._report(where, f"items: must be a list of objects (kind {found.kind})")
            return
        typed = item_type(found.kind, found.api_version)
        try:
            for i, item in enumerate(items.each() if items is not None else ()):
                yield from self._item(item, f"{prefix}items[{i}]", found.kind, typed, depth)
        except GoYAMLError as exc:  # each() pays for the items from the text's budget
            self._report(where, exc.message)

    def _item(
        self, item: Value, where: str, kind: str, typed: tuple[str, str] | None, depth: int
    ) -> Iterator[Item]:
        self._counted += 1
        if self._counted > MAX_LIST_ITEMS:
            raise TooManyItems
        if _tag(item) != "!!map":
            self._report(where, f"must be an object (an item of a kind {kind})")
            return
        item = dataclasses.replace(item, where=where)
        nested = _as_list(item)
        if nested is None:
            yield Item(item, typed)
        elif depth >= MAX_LIST_DEPTH:
            self._report(
                where,
                f"lists nest at most {MAX_LIST_DEPTH} deep: this kind {nested.kind} is not read",
            )
        else:
            yield from self._items(where, nested, f"{where}.", depth + 1)


def typed_document(document: object, typed: tuple[str, str] | None) -> object:
    """``document`` (an item converted to JSON data) with the ``kind`` and ``apiVersion`` of
    ``typed`` when it names neither, as kubectl's decoder gives a typed list's items."""
    if (
        typed is not None
        and isinstance(document, dict)
        and not names_a_type(document.get("kind"))
        and not names_a_type(document.get("apiVersion"))
    ):
        document["kind"], document["apiVersion"] = typed
    return document


def _as_list(value: Value) -> _List | None:
    """A list the agent reads (its kind and apiVersion, and its ``items`` unconverted; the last
    of repeated keys wins, as in its JSON); None for any other value, or one whose keys cannot
    be converted (converting it as a whole then reports why)."""
    if _tag(value) != "!!map":
        return None
    try:
        members = dict(value.struct().items())
        kind, api_version = members.get("kind"), members.get("apiVersion")
        kind_text = kind.json() if kind is not None else None
        version_text = api_version.json() if api_version is not None else None
    except GoYAMLError:
        return None
    if not (
        isinstance(kind_text, str)
        and isinstance(version_text, str)
        and is_list_kind(kind_text, version_text)
    ):
        return None
    return _List(kind_text, version_text, members.get("items"))


def _tag(value: Value) -> str:
    """What the value is (``!!map``, ``!!seq``, ``!!str``, ...); "" for a scalar whose tag
    does not fit its text (converting it reports why)."""
    try:
        return value.tag
    except GoYAMLError:
        return ""
