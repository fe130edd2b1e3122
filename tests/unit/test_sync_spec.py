"""spec.secretObjects checks: each broken entry is reported naming its field while the others
stay usable; and the owner-reference arithmetic behind "a Secret lives while a pod mounts it"."""

from __future__ import annotations

import pytest

from agent.model import OwnerReference, PodIdentity
from agent.sync.owners import consumer_reference, with_consumers, without_consumers
from agent.sync.spec import parse_secret_objects


def _entry(name: str = "db", kind: str = "Opaque", **extra: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "secretName": name,
        "type": kind,
        "data": [{"objectName": "password", "key": "password"}],
    }
    entry.update(extra)
    return entry


def test_a_good_entry_is_trimmed_as_upstream_does() -> None:
    entry = _entry(
        " db ",
        " Opaque ",
        data=[{"objectName": " dir/password ", "key": " pw "}],
        labels={"team": "a"},
        annotations={"note": "x"},
    )
    parsed = parse_secret_objects([entry])
    assert parsed.problems == ()
    (spec,) = parsed.specs
    assert (spec.secret_name, spec.type) == ("db", "Opaque")
    assert [(d.object_name, d.key, d.field) for d in spec.data] == [
        ("dir/password", "pw", "spec.secretObjects[0].data[0]")
    ]
    assert spec.labels == {"team": "a"}
    assert spec.annotations == {"note": "x"}


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"type": "Opaque", "data": [{"objectName": "a", "key": "a"}]}, "secretName is missing"),
        (_entry(kind=""), "spec.secretObjects[1].type is missing for secret db"),
        ({"secretName": "db", "data": [{"objectName": "a", "key": "a"}]}, ".type is missing"),
        (_entry(data=[]), "spec.secretObjects[1].data is empty"),
        (_entry(data=[{"objectName": "", "key": "k"}]), "data[0].objectName is empty"),
        (_entry(data=[{"objectName": "o", "key": "a/b"}]), "data[0].key: 'a/b' is not a valid"),
        (_entry("Bad_Name"), "secretName: 'Bad_Name' is not a valid Secret name"),
        (_entry(labels={"a": 1}), "spec.secretObjects[1].labels.a must be a string"),
        (
            _entry(kind="kubernetes.io/tls", data=[{"objectName": "c", "key": "ca.crt"}]),
            "data[0].key: 'ca.crt' is not supported for type kubernetes.io/tls",
        ),
        (
            _entry(kind="kubernetes.io/tls", data=[{"objectName": "c", "key": "tls.crt"}]),
            "needs the keys tls.crt and tls.key",
        ),
        (
            _entry(kind="kubernetes.io/basic-auth", data=[{"objectName": "t", "key": "token"}]),
            "needs a username or password key",
        ),
        (
            _entry(kind="kubernetes.io/service-account-token"),
            "annotations: type kubernetes.io/service-account-token needs the annotation",
        ),
        (
            _entry(data=[{"objectName": "a", "key": "k"}, {"objectName": "b", "key": "k"}]),
            "data[1].key: k is already set by spec.secretObjects[1].data[0]",
        ),
    ],
)
def test_a_bad_entry_is_reported_by_field_and_the_others_still_sync(
    entry: dict[str, object], field: str
) -> None:
    parsed = parse_secret_objects([_entry("first"), entry, _entry("last")])
    assert [spec.secret_name for spec in parsed.specs] == ["first", "last"]
    (problem,) = parsed.problems
    assert problem.index == 1
    assert field in problem.message


def test_a_secret_name_used_twice_is_reported_and_still_counts_as_named() -> None:
    parsed = parse_secret_objects([_entry("db"), _entry("db"), _entry("cache", kind="")])
    assert [spec.secret_name for spec in parsed.specs] == ["db"]
    assert "spec.secretObjects[1].secretName: db is already synced" in parsed.problems[0].message
    # A broken entry still names its Secret: it is not "no longer named", so it is not removed.
    assert parsed.named == {"db", "cache"}


def _pod(name: str, uid: str) -> PodIdentity:
    return PodIdentity("default", name, uid)


def test_consumers_are_added_once_and_removed_by_uid_only_among_pods() -> None:
    replica_set = OwnerReference("apps/v1", "ReplicaSet", "web-123", "rs-uid", controller=True)
    a, b = consumer_reference(_pod("a", "uid-a")), consumer_reference(_pod("b", "uid-b"))
    owners = with_consumers((replica_set,), (a,))
    assert with_consumers(owners, (a, b)) == (replica_set, a, b)
    assert without_consumers((replica_set, a, b), ["uid-a", "rs-uid"]) == (replica_set, b)


def test_a_replaced_pod_of_the_same_name_drops_the_dangling_reference() -> None:
    old = consumer_reference(_pod("db-0", "uid-old"))
    new = consumer_reference(_pod("db-0", "uid-new"))
    assert with_consumers((old,), (new,)) == (new,)
