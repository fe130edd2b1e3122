"""``go_json`` must produce the bytes Go's ``json.Marshal(map[string]string)`` produces.

Expected strings are what Go (>= 1.22, as upstream v1.6 is built with) prints; plugins may
compare or hash the attributes text, so equivalent JSON is not enough.
"""

from __future__ import annotations

import json

import pytest

from agent.model import ObjectVersion, PodIdentity, ProviderRequest
from agent.providers.plugin import go_json, mount_request


@pytest.mark.parametrize(
    ("value", "go_output"),
    [
        (None, "null"),
        ({}, "{}"),
        ({"b": "2", "a": "1"}, '{"a":"1","b":"2"}'),
        # Sorted by UTF-8 bytes: upper case before lower case, multi-byte after ASCII.
        (
            {"é": "1", "z": "2", "Z": "3", "a": "4", "🔑": "5", "\uffff": "6"},
            '{"Z":"3","a":"4","z":"2","é":"1","\uffff":"6","🔑":"5"}',
        ),
        # HTML characters are escaped, "/" is not.
        (
            {"html": '<a href="x">&</a>'},
            r'{"html":"\u003ca href=\"x\"\u003e\u0026\u003c/a\u003e"}',
        ),
        ({"<k>": "v"}, r'{"\u003ck\u003e":"v"}'),
        # Short escapes (\b and \f since Go 1.22), \u00XX in lower-case hex, DEL raw.
        ({"c": '\n\r\t\b\f\x00\x1f\x7f"\\'}, '{"c":"\\n\\r\\t\\b\\f\\u0000\\u001f\x7f\\"\\\\"}'),
        # Other non-ASCII is written raw, except the JavaScript line terminators.
        ({"u": "é日本🔑\u2028\u2029"}, '{"u":"é日本🔑\\u2028\\u2029"}'),
        # Invalid UTF-8 (a lone surrogate in Python) becomes U+FFFD.
        ({"bad": "a\udc80b"}, '{"bad":"a\ufffdb"}'),
        (
            {"csi.storage.k8s.io/serviceAccount.tokens": '{"aud":{"token":"t"}}'},
            r'{"csi.storage.k8s.io/serviceAccount.tokens":"{\"aud\":{\"token\":\"t\"}}"}',
        ),
    ],
)
def test_matches_go_encoding(value: dict[str, str] | None, go_output: str) -> None:
    assert go_json(value) == go_output


def test_output_is_valid_json_with_the_same_content() -> None:
    value = {"k&<>": "v\u2028\n", "objects": "array:\n  - |\n    objectName: a\n"}
    assert json.loads(go_json(value)) == value


def request(**overrides: object) -> ProviderRequest:
    fields: dict[str, object] = {
        "attributes": {"objects": "x", "secretProviderClass": "spc"},
        "secrets": {},
        "identity": PodIdentity("default", "web-0", "uid"),
        "target_path": "/pods/uid/volumes/kubernetes.io~csi/v/mount",
    }
    fields.update(overrides)
    return ProviderRequest(**fields)  # type: ignore[arg-type]


def test_mount_request_fields_as_upstream_sends_them() -> None:
    message = mount_request(request())
    assert message.attributes == '{"objects":"x","secretProviderClass":"spc"}'
    assert message.secrets == "null"  # no nodePublishSecretRef: Go's nil map
    assert message.permission == "420"
    assert message.target_path == "/pods/uid/volumes/kubernetes.io~csi/v/mount"
    assert message.current_object_version == []


def test_mount_request_with_secrets_mode_and_versions() -> None:
    message = mount_request(
        request(
            secrets={"password": "p&w", "client-id": "id"},
            default_mode=0o440,
            current_versions=(ObjectVersion("secret/a", "3"),),
        )
    )
    assert message.secrets == r'{"client-id":"id","password":"p\u0026w"}'
    assert message.permission == "288"
    assert [(v.id, v.version) for v in message.current_object_version] == [("secret/a", "3")]
