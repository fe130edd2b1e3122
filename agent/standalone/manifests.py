"""The documents of one standalone manifest file, as ``kubectl apply -f`` reads them.

A file holds one or more YAML documents; each is read as kubectl sends it to the API server
(sigs.k8s.io/yaml's YAML-to-JSON). A list (``v1`` ``kind: List``, what ``kubectl get ... -o
yaml`` prints, or a typed list such as ``SecretProviderClassList``, what the API returns)
stands for its ``items``, nested lists flattened (standalone/lists.py): kubectl applies each
item as an object of its own, so each is handed on as a document of its own, named by its
index path after the list (``items[3].items[0]``), and converted on its own (an item that
does not convert is reported alone; the others are still read).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agent.providers.common.goyaml import Decoder, GoYAMLError, Value, load_all
from agent.providers.common.goyaml_limits import Budget
from agent.standalone.lists import Flattener, Item, TooManyItems, typed_document

# A SecretProviderClass is an API object, which etcd takes up to 1.5 MiB, and this directory is
# often a ConfigMap volume (1 MiB in all): 4 MiB leaves room for many hand-written classes in one
# file, while a runaway file (a dump saved in the wrong place) is refused unparsed. What a file
# costs in memory depends on how dense it is, not on its size: a file of more values than
# goyaml_limits.MAX_EVENTS is refused before PyYAML builds its nodes (about 300 bytes each).
MAX_MANIFEST_BYTES = 4 * 1024 * 1024

Problems = list[tuple[str, str]]  # (where, why): a document or item reported and skipped
# Problems of one file that are logged: each is a warning line, written on the event loop at
# every change of the directory, and a List item costs two bytes ("1,"), so a 4 MiB file could
# hold two million of them (about 20 s of logging).
MAX_PROBLEMS_PER_FILE = 20
# A problem past those: counted by cap_problems, never logged, so not kept (a List at the
# event cap holds 300,000 items).
_COUNTED = ("", "")
# What reading the names of a document that did not convert may cost (``_names_of``): a few
# fields, whatever the rest of it holds (an alias bomb in its spec, say).
_NAMES_BUDGET = 100


@dataclass(frozen=True, slots=True)
class Unconverted:
    """A document (or list item) that did not convert, already reported as a problem, by what
    names it: ``kind``, ``apiVersion`` and ``metadata`` with only ``name`` and ``namespace``.
    A class among them is then known to be unusable (``reason``) rather than missing."""

    names: object
    reason: str


class UnreadableManifest(Exception):
    """The whole file could not be read or parsed; ``reason`` says why in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def documents(path: Path, problems: Problems) -> list[tuple[str, object]]:
    """``(where, document)`` for each document of the file, a list's items (nested lists
    flattened) in its place, each document as JSON data (mappings, lists, strings, numbers,
    booleans, None). ``where`` names the file, then ``(document N)`` in a multi-document file,
    then ``items[i]`` (``items[i].items[j]`` in a nested list) in a list. What cannot be
    converted goes to ``problems`` and is handed on as :class:`Unconverted`.

    Raises UnreadableManifest when the file is not UTF-8, is over :data:`MAX_MANIFEST_BYTES`
    (found out without reading more than that), is not valid YAML, holds more YAML events
    than ``goyaml_limits.MAX_EVENTS`` (found out before anything is composed) or its lists
    more than ``lists.MAX_LIST_ITEMS`` items (its other problems are then dropped).
    """
    try:
        values = load_all(_read(path), Decoder.SIGS_YAML, where=path.name)
    except (OSError, ValueError, GoYAMLError) as exc:
        reason = exc.message if isinstance(exc, GoYAMLError) else _short(exc)
        raise UnreadableManifest(reason) from None
    start = len(problems)

    def report(where: str, why: str) -> None:
        logged = len(problems) - start < MAX_PROBLEMS_PER_FILE
        problems.append((where, why) if logged else _COUNTED)

    found: list[tuple[str, object]] = []
    flattener = Flattener(report)
    try:
        for value in values:
            for item in flattener.flatten(value):
                try:
                    found.append((item.value.where, typed_document(item.value.json(), item.typed)))
                except GoYAMLError as exc:
                    report(item.value.where, exc.message)
                    found.append((item.value.where, Unconverted(_names_of(item), exc.message)))
    except TooManyItems as exc:
        del problems[start:]
        raise UnreadableManifest(exc.reason) from None
    return found


def _names_of(item: Item) -> object:
    """The kind, apiVersion, metadata.name and metadata.namespace of ``item`` as JSON data
    (a typed list's item takes the list's kind), read on a budget of their own; None when
    even those do not convert."""
    value = Value(item.value.node, item.value.where, item.value.decoder, Budget(_NAMES_BUDGET))
    try:
        fields = dict(value.struct().items())
        names: dict[str, object] = {
            key: fields[key].json() for key in ("kind", "apiVersion") if key in fields
        }
        if "metadata" in fields:
            metadata = dict(fields["metadata"].struct().items())
            names["metadata"] = {
                k: metadata[k].json() for k in ("name", "namespace") if k in metadata
            }
    except GoYAMLError:
        return None
    return typed_document(names, item.typed)


def cap_problems(problems: Problems, start: int, file: str) -> None:
    """Keep the first :data:`MAX_PROBLEMS_PER_FILE` of ``problems[start:]`` (one file's) and
    say how many more there were, in one more problem named ``file``."""
    more = len(problems) - start - MAX_PROBLEMS_PER_FILE
    if more > 0:
        del problems[start + MAX_PROBLEMS_PER_FILE :]
        problems.append((file, f"{more} more problems in this file, not logged one by one"))


def _read(path: Path) -> str:
    """The file's text; ValueError when it is not UTF-8 or larger than MAX_MANIFEST_BYTES,
    found out without reading more than that (the file may also grow after its stat)."""
    with path.open("rb") as handle:
        data = handle.read(MAX_MANIFEST_BYTES + 1)
    if len(data) > MAX_MANIFEST_BYTES:
        limit = MAX_MANIFEST_BYTES // (1024 * 1024)
        raise ValueError(
            f"larger than the {limit} MiB a standalone manifest file may hold; not read"
        )
    return data.decode("utf-8")


def _short(exc: BaseException) -> str:
    # YAML errors span several lines with a source excerpt; one line reads better in a log.
    return " ".join(str(exc).split()) or type(exc).__name__
