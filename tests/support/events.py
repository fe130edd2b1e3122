"""A ``ports.PodEventSink`` that keeps what it was given, for tests of what is announced."""

from __future__ import annotations

from agent.model import PodIdentity


class RecordedEvents:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []  # (pod name, reason, message)

    def warning(self, pod: PodIdentity, reason: str, message: str) -> None:
        self.sent.append((pod.name, reason, message))

    def normal(self, pod: PodIdentity, reason: str, message: str) -> None:
        self.sent.append((pod.name, reason, message))
