"""spec.secretObjects checks: each broken entry is reported naming its field while the others
stay usable; and the owner-reference arithmetic behind "a Secret lives while a consumer mounts
it"."""

from __future__ import annotations

import pytest

from agent.model import OwnerReference, PodInfo
from agent.sync.owners import (
    consumer_owners,
    is_pod_reference,
    is_status_reference,
    with_owners,
    without,
)
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
        # What the API server refuses with a 422 is refused here, naming the class's field.
        (_entry("db..prod"), "secretName: 'db..prod' is not a valid Secret name"),
        (_entry("db.-prod"), "secretName: 'db.-prod' is not a valid Secret name"),
        (_entry("db-.prod"), "secretName: 'db-.prod' is not a valid Secret name"),
        (_entry("d" * 254), "is not a valid Secret name"),
        (_entry(data=[{"objectName": "o", "key": ".."}]), "data[0].key: '..' is not a valid"),
        (_entry(data=[{"objectName": "o", "key": "."}]), "data[0].key: '.' is not a valid"),
        (_entry(data=[{"objectName": "o", "key": "..k"}]), "data[0].key: '..k' is not a valid"),
        (_entry(data=[{"objectName": "o", "key": "k" * 254}]), "is not a valid Secret data key"),
        (_entry(labels={"team": "a b"}), "spec.secretObjects[1].labels.team: 'a b' is not a"),
        (_entry(labels={"team": "v" * 64}), "spec.secretObjects[1].labels.team: 'vvvv"),
        (_entry(labels={"bad key": "a"}), "spec.secretObjects[1].labels: 'bad key' is not a"),
        (_entry(labels={"Example.com/x": "a"}), "labels: 'Example.com/x' is not a valid"),
        (_entry(labels={"a/b/c": "a"}), "labels: 'a/b/c' is not a valid"),
        (_entry(labels={"": "a"}), "labels: '' is not a valid"),
        (_entry(annotations={"-x": "a"}), "spec.secretObjects[1].annotations: '-x' is not"),
        (
            _entry(annotations={"big": "x" * 256 * 1024}),
            "spec.secretObjects[1].annotations: 262147 bytes in all, more than the API's 262144",
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


def test_names_and_keys_the_api_accepts_are_accepted() -> None:
    entry = _entry(
        "d" * 253,
        data=[{"objectName": "o", "key": "k" * 253}, {"objectName": "p", "key": ".k..x"}],
        labels={"example.com/Team_1": "A-b.c_9", "empty": "", "x": "v" * 63},
        annotations={"Example.com/Note": "any text at all: ünïcode, spaces"},
    )
    parsed = parse_secret_objects([entry])
    assert parsed.problems == ()
    assert parsed.named == {"d" * 253}


def test_a_secret_name_used_twice_is_reported_and_still_counts_as_named() -> None:
    parsed = parse_secret_objects([_entry("db"), _entry("db"), _entry("cache", kind="")])
    assert [spec.secret_name for spec in parsed.specs] == ["db"]
    assert "spec.secretObjects[1].secretName: db is already synced" in parsed.problems[0].message
    # A broken entry still names its Secret: it is not "no longer named", so it is not removed.
    assert parsed.named == {"db", "cache"}


RS = OwnerReference("apps/v1", "ReplicaSet", "web-5d8f", "rs-uid", True, True)
STATUS = OwnerReference(
    "secrets-store.csi.x-k8s.io/v1", "SecretProviderClassPodStatus", "web-0-ns-spc", "st-uid"
)


def test_a_consumer_references_its_pods_owners_as_upstream_copies_them_else_its_status() -> None:
    owned = PodInfo("ns", "web-5d8f-aaaaa", "pod-uid", owners=(RS, RS))
    # apiVersion, kind, name, uid only (upstream's Patcher): no controller, no blockOwnerDeletion.
    assert consumer_owners(owned, STATUS) == (
        OwnerReference("apps/v1", "ReplicaSet", "web-5d8f", "rs-uid"),
    )
    bare = PodInfo("ns", "web-0", "pod-uid")
    assert consumer_owners(bare, STATUS) == (STATUS,)
    assert consumer_owners(bare, None) == ()  # its status is not written yet


def test_owners_are_added_once_replacing_a_dangling_namesake_and_the_pods_own_reference() -> None:
    user = OwnerReference("example.com/v1", "App", "web", "app-uid")
    legacy = OwnerReference("v1", "Pod", "web-5d8f-aaaaa", "pod-uid")
    other_pod = OwnerReference("v1", "Pod", "web-5d8f-bbbbb", "other-uid")
    rs = consumer_owners(PodInfo("ns", "p", "pod-uid", owners=(RS,)), None)
    added = with_owners((user, legacy, other_pod), rs, "pod-uid")
    assert added == (user, other_pod, *rs)
    assert with_owners(added, rs, "pod-uid") == added
    # A ReplicaSet deleted and created again under its name: the old uid dangles.
    old = OwnerReference("apps/v1", "ReplicaSet", "web-5d8f", "old-uid")
    assert with_owners((old, user), rs, "pod-uid") == (user, *rs)
    assert without((user, *rs, STATUS), {"rs-uid", "st-uid"}) == (user,)


def test_references_to_a_pod_and_to_a_status_are_told_apart() -> None:
    assert is_pod_reference(OwnerReference("v1", "Pod", "p", "pod-uid"), "pod-uid")
    assert not is_pod_reference(OwnerReference("v1", "Pod", "p", "pod-uid"), "other")
    assert not is_pod_reference(RS, "rs-uid")
    assert is_status_reference(STATUS, "web-0-ns-spc")
    assert not is_status_reference(STATUS, "web-1-ns-spc")
