"""Telling a class's owner that its rotation-poll-interval annotation was not used as written.

The planner reads a due class on every pass, so a bad annotation would otherwise be reported
on every pass. Here each class *version* is reported once: one log line, and one Warning
event (``InvalidRotationPollInterval``) on each pod of this node that uses the class, named by
the annotation, its value and the flag whose interval is used instead. A version is the
class's uid, ``metadata.generation`` and the annotation's value: annotations are metadata, so
editing one does not bump a custom resource's generation, but a new value is a new report. A
value raised to ``--rotation-min-poll-interval`` is logged once, with no event (the class
still rotates, only no faster than the node allows).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import structlog

from agent.model import ROTATION_POLL_INTERVAL_ANNOTATION, PodIdentity, SecretProviderClass
from agent.ports import PodEventSink
from agent.rotation.policy import ClassInterval, RotationSettings, class_interval

log = structlog.get_logger("agent.rotation")

INVALID_ROTATION_POLL_INTERVAL = "InvalidRotationPollInterval"
MAX_CLASSES = 4096  # classes with a notice remembered (least recently seen dropped first)

_Version = tuple[str, int, str]  # (uid, generation, annotation value)


@dataclass(slots=True)
class _Notice:
    version: _Version
    told: set[str] = field(default_factory=set)  # uids of pods given the event


class IntervalNotices:
    def __init__(self, settings: RotationSettings, events: PodEventSink | None) -> None:
        self._settings = settings
        self._events = events
        self._notices: OrderedDict[tuple[str, str], _Notice] = OrderedDict()

    def check(self, spc: SecretProviderClass, pods: Sequence[PodIdentity]) -> None:
        """Report what is wrong with ``spc``'s annotation, if anything, unless this version
        was reported already. ``pods`` have volumes of the class on this node; with none the
        class paces nothing here and nothing is said (every node sees every class)."""
        key = (spc.namespace, spc.name)
        if not pods:
            return
        interval = class_interval(spc, self._settings)
        if interval.annotation is None or (interval.invalid is None and interval.asked is None):
            self._notices.pop(key, None)
            return
        notice = self._notice(key, (spc.uid, spc.generation, interval.annotation), interval)
        if interval.invalid is None or self._events is None:
            return
        message = self._message(spc, interval.invalid)
        for pod in pods:
            if pod.uid not in notice.told:
                notice.told.add(pod.uid)
                self._events.warning(pod, INVALID_ROTATION_POLL_INTERVAL, message)

    def prune(self, live_pods: Iterable[str]) -> None:
        """Forget pods that no longer have a volume here (flat memory under pod churn)."""
        live = set(live_pods)
        for notice in self._notices.values():
            notice.told &= live

    def _notice(self, key: tuple[str, str], version: _Version, interval: ClassInterval) -> _Notice:
        notice = self._notices.get(key)
        if notice is not None and notice.version == version:
            self._notices.move_to_end(key)
            return notice
        notice = self._notices[key] = _Notice(version)
        self._notices.move_to_end(key)
        while len(self._notices) > MAX_CLASSES:
            self._notices.popitem(last=False)
        self._log(key, interval)
        return notice

    def _log(self, key: tuple[str, str], interval: ClassInterval) -> None:
        namespace, name = key
        detail: dict[str, object]
        if interval.invalid is not None:
            event = "rotation.interval_invalid"
            detail = {"error": interval.invalid, "note": "using --rotation-poll-interval"}
        else:
            event = "rotation.interval_raised"
            detail = {"asked_s": interval.asked, "note": "below --rotation-min-poll-interval"}
        log.warning(
            event,
            spc=name,
            namespace=namespace,
            annotation=ROTATION_POLL_INTERVAL_ANNOTATION,
            used_s=interval.seconds,
            **detail,
        )

    def _message(self, spc: SecretProviderClass, error: str) -> str:
        return (
            f"ignoring annotation {ROTATION_POLL_INTERVAL_ANNOTATION} on secretproviderclass "
            f"{spc.namespace}/{spc.name}: {error}; "
            f"using --rotation-poll-interval ({self._settings.interval:g}s)"
        )
