"""The set of resource types the fake serves, looked up by URL parts or by any name a test uses
(``pods``, ``Pod``, ``po``, ``secretproviderclasses.secrets-store.csi.x-k8s.io``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from tests.fakes.kube.resources import ResourceType


class TypeRegistry:
    def __init__(self, types: Iterable[ResourceType]) -> None:
        self._types = list(types)

    def __iter__(self) -> Iterator[ResourceType]:
        return iter(self._types)

    def find(self, group: str, version: str, plural: str) -> ResourceType | None:
        """The type served at ``/apis/<group>/<version>/<plural>`` (``group`` ``""``: core)."""
        for rtype in self._types:
            if rtype.group == group and rtype.plural == plural and rtype.version(version):
                return rtype
        return None

    def named(self, name: str) -> ResourceType:
        """By plural, singular, Kind, short name or ``plural.group``; the core group wins
        when two groups share a name (``events``)."""
        matches = [t for t in self._types if name in t.names()]
        if not matches:
            raise KeyError(f"the fake serves no resource called {name!r}")
        return sorted(matches, key=lambda t: t.group != "")[0]

    def groups(self) -> dict[str, list[ResourceType]]:
        """Named API groups in the order first registered (``/apis``)."""
        found: dict[str, list[ResourceType]] = {}
        for rtype in self._types:
            if rtype.group:
                found.setdefault(rtype.group, []).append(rtype)
        return found

    def by_key(self, key: str) -> list[ResourceType]:
        return [t for t in self._types if t.key == key]
