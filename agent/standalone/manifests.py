"""The documents of one standalone manifest file, as ``kubectl apply -f`` reads them.

A file holds one or more YAML documents; each is read as kubectl sends it to the API server
(sigs.k8s.io/yaml's YAML-to-JSON). A ``kind: List`` of ``apiVersion: v1`` (what ``kubectl get
... -o yaml`` prints for several objects) stands for its ``items``: kubectl applies each item as
an object of its own, so each is handed on as a document of its own, named ``items[i]`` after
the List, and converted on its own (an item that does not convert is reported alone; the
others are still read). A List inside a List is reported, not read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import TypeGuard

from agent.providers.common.goyaml import Decoder, GoYAMLError, Value, load_all

# A SecretProviderClass is an API object, which etcd takes up to 1.5 MiB, and this directory is
# often a ConfigMap volume (1 MiB in all): 4 MiB leaves room for many hand-written classes in one
# file, while a runaway file (a dump saved in the wrong place) is refused unparsed. What a file
# costs in memory depends on how dense it is, not on its size: a file of more values than
# goyaml_limits.MAX_EVENTS is refused before PyYAML builds its nodes (about 300 bytes each).
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
LIST_KIND = "List"
LIST_API_VERSION = "v1"

Problems = list[tuple[str, str]]  # (where, why): a document or item reported and skipped
# Problems of one file that are logged: each is a warning line, written on the event loop at
# every change of the directory, and a List item costs two bytes ("1,"), so a 4 MiB file could
# hold two million of them (about 20 s of logging).
MAX_PROBLEMS_PER_FILE = 20
# A problem past those: counted by cap_problems, never logged, so not kept (a List at the
# event cap holds 300,000 items).
_COUNTED = ("", "")


class UnreadableManifest(Exception):
    """The whole file could not be read or parsed; ``reason`` says why in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def documents(path: Path, problems: Problems) -> list[tuple[str, object]]:
    """``(where, document)`` for each document of the file, a v1 List's items in its place,
    each document as JSON data (mappings, lists, strings, numbers, booleans, None). ``where``
    names the file, then ``(document N)`` in a multi-document file, then ``items[i]`` in a
    List. What cannot be converted goes to ``problems`` and is left out.

    Raises UnreadableManifest when the file is not UTF-8, is over :data:`MAX_MANIFEST_BYTES`
    (found out without reading more than that), is not valid YAML or holds more YAML events
    than ``goyaml_limits.MAX_EVENTS`` (found out before anything is composed).
    """
    try:
        values = load_all(_read(path), Decoder.SIGS_YAML, where=path.name)
    except (OSError, ValueError, GoYAMLError) as exc:
        reason = exc.message if isinstance(exc, GoYAMLError) else _short(exc)
        raise UnreadableManifest(reason) from None
    found: list[tuple[str, object]] = []
    start = len(problems)
    for value in values:
        items = _list_items(value, problems, start)
        for each in [value] if items is None else items:
            try:
                found.append((each.where, each.json()))
            except GoYAMLError as exc:
                problems.append((each.where, exc.message))
    return found


def cap_problems(problems: Problems, start: int, file: str) -> None:
    """Keep the first :data:`MAX_PROBLEMS_PER_FILE` of ``problems[start:]`` (one file's) and
    say how many more there were, in one more problem named ``file``."""
    more = len(problems) - start - MAX_PROBLEMS_PER_FILE
    if more > 0:
        del problems[start + MAX_PROBLEMS_PER_FILE :]
        problems.append((file, f"{more} more problems in this file, not logged one by one"))


def is_list(document: object) -> TypeGuard[Mapping[str, object]]:
    return (
        isinstance(document, Mapping)
        and document.get("kind") == LIST_KIND
        and document.get("apiVersion") == LIST_API_VERSION
    )


def _list_items(value: Value, problems: Problems, start: int) -> list[Value] | None:
    """The items of a v1 List document, unconverted; None for any other document. Problems
    go to ``problems`` (the file's from ``start``)."""
    members = _list_members(value)
    if members is None:
        return None
    items = members.get("items")
    if items is not None and _tag(items) not in ("!!seq", "!!null"):
        problems.append((value.where, "items: must be a list of objects (kind List)"))
        return []
    found = []
    for i, item in enumerate(items.each() if items is not None else ()):
        where = f"{value.where} items[{i}]"
        if _tag(item) != "!!map":
            _report(problems, start, where, "must be an object (an item of a kind List)")
        elif _list_members(item) is not None:
            _report(problems, start, where, "a kind List inside a List is not read")
        else:
            found.append(dataclasses.replace(item, where=where))
    return found


def _report(problems: Problems, start: int, where: str, why: str) -> None:
    logged = len(problems) - start < MAX_PROBLEMS_PER_FILE
    problems.append((where, why) if logged else _COUNTED)


def _list_members(value: Value) -> dict[str, Value] | None:
    """A v1 List's top-level keys and their values, unconverted (the last of repeated keys
    wins, as in its JSON); None for any other value, or one whose keys cannot be converted
    (converting it as a whole then reports why)."""
    if _tag(value) != "!!map":
        return None
    try:
        members = dict(value.struct().items())
        kind, api_version = members.get("kind"), members.get("apiVersion")
        found = {
            "kind": kind.json() if kind else None,
            "apiVersion": api_version.json() if api_version else None,
        }
    except GoYAMLError:
        return None
    return members if is_list(found) else None


def _tag(value: Value) -> str:
    """What the value is (``!!map``, ``!!seq``, ``!!str``, ...); "" for a scalar whose tag
    does not fit its text (converting it reports why)."""
    try:
        return value.tag
    except GoYAMLError:
        return ""


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
