"""Every request the fake answered, for tests that count API calls ("one write, no read per
publish") or check what a client sent (user agent, selectors, bodies)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from tests.fakes.kube.paths import RequestInfo


@dataclass
class RecordedRequest:
    info: RequestInfo
    query: Mapping[str, str]
    user_agent: str
    content_type: str
    body: Any  # parsed JSON, or None
    status: int = 0  # HTTP status sent; 0 while a watch streams or after a reset

    @property
    def method(self) -> str:
        return self.info.method

    @property
    def path(self) -> str:
        return self.info.path

    @property
    def verb(self) -> str:
        return self.info.verb

    @property
    def resource(self) -> str:
        return self.info.resource_path

    def matches(self, **wanted: object) -> bool:
        """Filter by any attribute here or of :class:`RequestInfo` (``verb="create"``,
        ``resource="pods/status"``, ``namespace="default"``, ``status=409``...)."""
        for key, value in wanted.items():
            actual = getattr(self, key) if hasattr(self, key) else getattr(self.info, key)
            if actual != value:
                return False
        return True


class RequestLog:
    def __init__(self) -> None:
        self._entries: list[RecordedRequest] = []

    def record(self, entry: RecordedRequest) -> None:
        self._entries.append(entry)

    def __iter__(self) -> Iterator[RecordedRequest]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, index: int) -> RecordedRequest:
        return self._entries[index]

    def filter(self, **wanted: object) -> list[RecordedRequest]:
        return [entry for entry in self._entries if entry.matches(**wanted)]

    def count(self, **wanted: object) -> int:
        return len(self.filter(**wanted))

    def mark(self) -> int:
        """A position to pass to :meth:`since` (``requests.since(mark, verb="get")``)."""
        return len(self._entries)

    def since(self, mark: int, **wanted: object) -> list[RecordedRequest]:
        return [entry for entry in self._entries[mark:] if entry.matches(**wanted)]

    def clear(self) -> None:
        self._entries.clear()
