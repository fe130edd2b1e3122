"""A bad rotation-poll-interval annotation is told once per class version, not per pass."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from structlog.testing import capture_logs

from agent.model import ROTATION_POLL_INTERVAL_ANNOTATION, PodIdentity, SecretProviderClass
from agent.rotation.notices import INVALID_ROTATION_POLL_INTERVAL, IntervalNotices
from agent.rotation.policy import RotationSettings
from tests.support.events import RecordedEvents

SETTINGS = RotationSettings(interval=120.0, min_interval=10.0)
WEB, API = (PodIdentity("default", name, f"uid-{name}", "sa", {}) for name in ("web-0", "api-0"))


def spc(value: str | None, generation: int = 1) -> SecretProviderClass:
    annotations = {ROTATION_POLL_INTERVAL_ANNOTATION: value} if value is not None else {}
    return SecretProviderClass(
        "app", "default", "vault", {"roleName": "r"}, uid="u1", generation=generation,
        annotations=annotations,
    )  # fmt: skip


def logged(entries: Sequence[Mapping[str, Any]], event: str) -> int:
    return [entry["event"] for entry in entries].count(event)


def test_an_invalid_value_is_told_once_per_pod_and_logged_once() -> None:
    events = RecordedEvents()
    notices = IntervalNotices(SETTINGS, events)
    with capture_logs() as entries:
        for _ in range(5):  # five planning passes
            notices.check(spc("soon"), [WEB])
        notices.check(spc("soon"), [WEB, API])  # a pod that came later is told too
    assert logged(entries, "rotation.interval_invalid") == 1
    assert [(pod, reason) for pod, reason, _ in events.sent] == [
        ("web-0", INVALID_ROTATION_POLL_INTERVAL),
        ("api-0", INVALID_ROTATION_POLL_INTERVAL),
    ]
    assert events.sent[0][2] == (
        f"ignoring annotation {ROTATION_POLL_INTERVAL_ANNOTATION} on secretproviderclass "
        "default/app: invalid duration 'soon' (examples: 90s, 2m, 1h30m); "
        "using --rotation-poll-interval (120s)"
    )


def test_a_new_version_is_told_again() -> None:
    events = RecordedEvents()
    notices = IntervalNotices(SETTINGS, events)
    with capture_logs() as entries:
        notices.check(spc("soon"), [WEB])
        notices.check(spc("soon", generation=2), [WEB])  # the spec was edited
        notices.check(spc("later", generation=2), [WEB])  # another bad value
        notices.check(spc("30s", generation=2), [WEB])  # fixed
        notices.check(spc("soon", generation=2), [WEB])  # broken again: told again
    assert logged(entries, "rotation.interval_invalid") == 4
    assert len(events.sent) == 4


def test_a_raised_value_is_logged_once_without_an_event() -> None:
    events = RecordedEvents()
    notices = IntervalNotices(SETTINGS, events)
    with capture_logs() as entries:
        for _ in range(3):
            notices.check(spc("1s"), [WEB])
        notices.check(spc("30s"), [WEB])  # a valid value says nothing
        notices.check(spc(None), [WEB])
        notices.check(spc("1s"), [WEB])  # set again after a fix: said again
    assert logged(entries, "rotation.interval_raised") == 2
    assert len(entries) == 2
    assert events.sent == []


def test_no_pods_here_nothing_said_and_gone_pods_forgotten() -> None:
    events = RecordedEvents()
    notices = IntervalNotices(SETTINGS, events)
    with capture_logs() as entries:
        notices.check(spc("soon"), [])  # a class no volume on this node uses
    assert entries == [] and events.sent == []
    notices.check(spc("soon"), [WEB, API])
    notices.prune([API.uid])  # web-0's volumes are gone
    notices.check(spc("soon"), [WEB, API])  # a pod of the same uid back: told again
    assert [pod for pod, _, _ in events.sent] == ["web-0", "api-0", "web-0"]


def test_standalone_mode_only_logs() -> None:
    notices = IntervalNotices(SETTINGS, None)
    with capture_logs() as entries:
        notices.check(spc("soon"), [WEB])
        notices.check(spc("soon"), [WEB])
    assert logged(entries, "rotation.interval_invalid") == 1


def test_a_value_go_would_overflow_is_invalid_and_named() -> None:
    events = RecordedEvents()
    IntervalNotices(SETTINGS, events).check(spc("2562048h"), [WEB])
    ((_, _, message),) = events.sent
    assert message.startswith(
        f"ignoring annotation {ROTATION_POLL_INTERVAL_ANNOTATION} on secretproviderclass "
        "default/app: invalid duration '2562048h': longer than 2562047h47m16.854775807s"
    )
    assert message.endswith("using --rotation-poll-interval (120s)")
